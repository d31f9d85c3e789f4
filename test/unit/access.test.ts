import { describe, expect, it } from "vitest";
import { auditCustomerFor, canActOn, customerFor, requireCanActOn, requireNoEscalation, requireNoRevival, requireScope } from "../../src/domain/access.js";
import { ApiError } from "../../src/domain/errors.js";
import type { Caller, KeyRecord } from "../../src/domain/types.js";

const OWN = "6f1c2d3e-0000-4000-8000-000000000001";
const OTHER = "6f1c2d3e-0000-4000-8000-000000000002";
const INSTANCE = "6f1c2d3e-0000-4000-8000-0000000000aa";

const keyCaller = (over: Partial<KeyRecord> = {}): Caller => ({
  kind: "key",
  key: {
    id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", customerId: OWN, instanceId: null, name: "k", prefix: "zpk_live_abcd1234",
    environment: "live", scopes: [], metadata: {}, digest: "d", lastUsedAt: null, totalRequests: 0, expiresAt: null,
    createdAt: 0, updatedAt: 0, revokedAt: null, enabled: true, rolledFrom: null, rolledTo: null, predecessorGraceMs: null,
    lastFour: "1234", ...over,
  },
});
const internal: Caller = { kind: "internal", name: "signup" };

/** The code of the ApiError `fn` throws. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e.code;
    throw e;
  }
  return "no error";
}

describe("tenancy", () => {
  it("a key acts for its own customer: omitted or named (any case), never another", () => {
    expect(customerFor(keyCaller(), "")).toBe(OWN);
    expect(customerFor(keyCaller(), OWN.toUpperCase())).toBe(OWN);
    expect(codeOf(() => customerFor(keyCaller(), OTHER))).toBe("permission_denied");
  });

  it("an internal caller must name a customer, as a UUID", () => {
    expect(customerFor(internal, OTHER.toUpperCase())).toBe(OTHER);
    expect(codeOf(() => customerFor(internal, ""))).toBe("invalid_argument");
    expect(codeOf(() => customerFor(internal, "not-a-uuid"))).toBe("invalid_argument");
  });

  it("the audit trail: an internal caller naming no customer reads every customer's; a key only its own", () => {
    expect(auditCustomerFor(internal, "")).toBeNull();
    expect(auditCustomerFor(internal, OTHER)).toBe(OTHER);
    expect(auditCustomerFor(keyCaller(), "")).toBe(OWN);
    expect(codeOf(() => auditCustomerFor(keyCaller(), OTHER))).toBe("permission_denied");
  });
});

describe("scopes and escalation", () => {
  it("a restricted key needs the call's scope; an unrestricted key and internal callers do not", () => {
    expect(codeOf(() => requireScope(keyCaller({ scopes: ["api_keys:read"] }), "api_keys:write"))).toBe("permission_denied");
    expect(codeOf(() => requireScope(keyCaller({ scopes: ["api_keys:write"] }), "api_keys:write"))).toBe("no error");
    expect(codeOf(() => requireScope(keyCaller(), "audit:read"))).toBe("no error");
    expect(codeOf(() => requireScope(internal, "audit:read"))).toBe("no error");
  });

  it("a key issues only a subset of its scopes, bound to its own instance; omitted fields are not inherited", () => {
    const restricted = keyCaller({ scopes: ["api_keys:read", "orders:read"] });
    expect(codeOf(() => requireNoEscalation(restricted, { instanceId: null, scopes: ["orders:read"] }))).toBe("no error");
    expect(codeOf(() => requireNoEscalation(restricted, { instanceId: null, scopes: ["orders:write"] }))).toBe("permission_denied");
    expect(codeOf(() => requireNoEscalation(restricted, { instanceId: null, scopes: [] }))).toBe("permission_denied");
    const bound = keyCaller({ instanceId: INSTANCE });
    expect(codeOf(() => requireNoEscalation(bound, { instanceId: INSTANCE, scopes: [] }))).toBe("no error");
    expect(codeOf(() => requireNoEscalation(bound, { instanceId: null, scopes: [] }))).toBe("permission_denied");
    expect(codeOf(() => requireNoEscalation(internal, { instanceId: null, scopes: [] }))).toBe("no error");
  });
});

describe("canActOn (roll, disable, enable: SPEC §2)", () => {
  const target = (over: Partial<KeyRecord>) => (keyCaller(over) as Extract<Caller, { kind: "key" }>).key;
  it("an unrestricted unbound key and internal callers may act on any key of the customer", () => {
    expect(canActOn(keyCaller(), target({ scopes: ["a"] }))).toBe(true);
    expect(canActOn(keyCaller(), target({ instanceId: INSTANCE }))).toBe(true);
    expect(canActOn(internal, target({}))).toBe(true);
  });
  it("a restricted key acts only on keys whose scopes are a subset of its own", () => {
    const writer = keyCaller({ scopes: ["api_keys:write", "orders:read"] });
    expect(canActOn(writer, target({ scopes: ["orders:read"] }))).toBe(true);
    expect(canActOn(writer, target({ scopes: ["orders:read", "orders:write"] }))).toBe(false);
    expect(canActOn(writer, target({ scopes: [] })), "an unrestricted key is beyond any restricted one").toBe(false);
  });
  it("a bound key acts only on keys bound to its instance", () => {
    const bound = keyCaller({ instanceId: INSTANCE });
    expect(canActOn(bound, target({ instanceId: INSTANCE }))).toBe(true);
    expect(canActOn(bound, target({ instanceId: null }))).toBe(false);
    expect(canActOn(bound, target({ instanceId: OTHER }))).toBe(false);
  });
});

describe("acting on an existing key: the refusal names the reason (issue 12)", () => {
  const target = (over: Partial<KeyRecord> = {}) => (keyCaller(over) as Extract<Caller, { kind: "key" }>).key;
  /** The message requireCanActOn refuses with, or "allowed". */
  function refusal(caller: Caller, key: KeyRecord, action: string): string {
    try {
      requireCanActOn(caller, key, action);
      return "allowed";
    } catch (e) {
      if (e instanceof ApiError && e.code === "permission_denied") return e.message;
      throw e;
    }
  }

  it("403 says which rule: an unrestricted key, scopes it lacks, another binding", () => {
    const writer = keyCaller({ scopes: ["api_keys:write"] });
    expect(refusal(writer, target(), "revoke")).toMatch(/cannot revoke an unrestricted key/);
    expect(refusal(writer, target({ scopes: ["api_keys:write", "audit:read"] }), "update")).toMatch(/scopes it does not hold: audit:read/);
    expect(refusal(writer, target({ scopes: ["api_keys:write"] }), "update")).toBe("allowed");
    const bound = keyCaller({ instanceId: INSTANCE });
    expect(refusal(bound, target(), "update")).toMatch(/not bound to an instance/);
    expect(refusal(bound, target({ instanceId: OTHER }), "roll")).toMatch(/cannot roll a key of another instance/);
  });

  it("a revoked or expired key's expiry cannot be set (failed_precondition); its name can; an active or disabled key's expiry can", () => {
    const now = 1_000_000;
    expect(codeOf(() => requireNoRevival(target({ expiresAt: now }), { expiresAt: null }, now))).toBe("failed_precondition");
    expect(codeOf(() => requireNoRevival(target({ revokedAt: 5 }), { expiresAt: now + 10 }, now))).toBe("failed_precondition");
    expect(codeOf(() => requireNoRevival(target({ revokedAt: 5 }), {}, now))).toBe("no error");
    expect(codeOf(() => requireNoRevival(target({ expiresAt: now + 1 }), { expiresAt: null }, now))).toBe("no error");
    expect(codeOf(() => requireNoRevival(target({ enabled: false }), { expiresAt: null }, now))).toBe("no error");
  });
});
