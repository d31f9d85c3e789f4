import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/domain/errors.js";
import { INTERNAL, unitService } from "../helpers/unit-service.js";

/**
 * Tenancy and scopes (SPEC §2, §3) through the ServiceImpl: a key acts only for its customer,
 * sees only its instance's keys if it is bound, needs the scope of each call, and never issues a
 * key with more than it holds. Other customers' keys are not_found, never permission_denied.
 */
const codeOf = (e: { cause?: unknown }) => (e.cause instanceof ApiError ? e.cause.code : "not an ApiError");

describe("a customer key", () => {
  it("acts for its own customer only: naming another is permission_denied, its keys are not_found", async () => {
    const s = unitService();
    const mine = randomUUID();
    const theirs = randomUUID();
    const { bearer } = await s.issue(mine);
    const other = (await s.issue(theirs)).key;
    expect(codeOf(await s.failure("listKeys", { customerId: theirs }, bearer))).toBe("permission_denied");
    expect(codeOf(await s.failure("issueKey", { customerId: theirs, name: "x" }, bearer))).toBe("permission_denied");
    for (const m of ["getKey", "revokeKey"] as const) {
      expect(codeOf(await s.failure(m, { id: other.id }, bearer)), m).toBe("not_found");
    }
    expect(codeOf(await s.failure("updateKey", { id: other.id, name: "x" }, bearer))).toBe("not_found");
    expect((await s.store.findKey(theirs, other.id))!.revokedAt).toBeNull();
    const listed = (await s.call("listKeys", { customerId: mine.toUpperCase() }, bearer)).res.data;
    expect(listed.every((k) => k.customerId === mine)).toBe(true);
  });

  it("bound to an instance sees and manages only that instance's keys", async () => {
    const s = unitService();
    const customer = randomUUID();
    const a = randomUUID();
    const b = randomUUID();
    const { bearer } = await s.issue(customer, { instanceId: a });
    const inA = (await s.issue(customer, { instanceId: a })).key;
    const inB = (await s.issue(customer, { instanceId: b })).key;
    const unbound = (await s.issue(customer)).key;
    const listed = (await s.call("listKeys", {}, bearer)).res.data.map((k) => k.id);
    expect(listed).toContain(inA.id);
    expect(listed).not.toContain(inB.id);
    expect(listed).not.toContain(unbound.id);
    expect((await s.call("listKeys", { instanceId: b }, bearer)).res.data).toEqual([]);
    expect(codeOf(await s.failure("getKey", { id: inB.id }, bearer))).toBe("not_found");
    expect(codeOf(await s.failure("revokeKey", { id: unbound.id }, bearer))).toBe("not_found");
  });

  it("needs api_keys:read to read, api_keys:write to change, audit:read for the trail", async () => {
    const s = unitService();
    const customer = randomUUID();
    const reader = (await s.issue(customer, { scopes: ["api_keys:read"] })).bearer;
    const writer = (await s.issue(customer, { scopes: ["api_keys:write"] })).bearer;
    // A target within the writer's own scopes: SPEC §2 lets a key change only keys it could issue.
    const target = (await s.issue(customer, { scopes: ["api_keys:write"] })).key;
    const admin = (await s.issue(customer)).key;
    expect((await s.call("getKey", { id: target.id }, reader)).res.key!.id).toBe(target.id);
    expect(codeOf(await s.failure("revokeKey", { id: target.id }, reader))).toBe("permission_denied");
    expect(codeOf(await s.failure("listAuditEvents", {}, reader))).toBe("permission_denied");
    expect(codeOf(await s.failure("getKey", { id: target.id }, writer))).toBe("permission_denied");
    expect((await s.call("revokeKey", { id: target.id }, writer)).res.key!.isActive).toBe(false);
    expect(codeOf(await s.failure("revokeKey", { id: admin.id }, writer))).toBe("permission_denied");
  });

  it("cannot issue a key with scopes it lacks, or unbound when it is bound", async () => {
    const s = unitService();
    const customer = randomUUID();
    const instance = randomUUID();
    const restricted = (await s.issue(customer, { scopes: ["api_keys:write", "orders:read"] })).bearer;
    expect(codeOf(await s.failure("issueKey", { name: "x", scopes: ["orders:write"] }, restricted))).toBe("permission_denied");
    expect(codeOf(await s.failure("issueKey", { name: "x" }, restricted))).toBe("permission_denied");
    const ok = await s.call("issueKey", { name: "x", scopes: ["orders:read"] }, restricted);
    expect(ok.res.key!.scopes).toEqual(["orders:read"]);

    const bound = (await s.issue(customer, { instanceId: instance })).bearer;
    const e = await s.failure("issueKey", { name: "x" }, bound);
    expect(codeOf(e)).toBe("permission_denied");
    expect(e.rawMessage).toContain(instance);
    expect((await s.call("issueKey", { name: "x", instanceId: instance }, bound)).res.key!.instanceId).toBe(instance);
  });

  it("cannot call internal RPCs: permission_denied, and no charge or policy change happens", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { bearer } = await s.issue(customer);
    for (const m of ["authenticate", "chargeRateLimit", "setRateLimit"] as const) {
      expect(codeOf(await s.failure(m, { customerId: customer, key: "zpk_x", capacity: 5, refillPerSecond: 1 }, bearer)), m).toBe("permission_denied");
    }
    expect(s.store.calls.get("setRateLimitPolicy")).toBeUndefined();
  });
});

describe("the audit trail", () => {
  it("a key reads only its customer's events; the internal caller reads all or one customer's", async () => {
    const s = unitService();
    const a = randomUUID();
    const b = randomUUID();
    const { bearer } = await s.issue(a);
    await s.issue(b);
    const own = (await s.call("listAuditEvents", {}, bearer)).res.data;
    expect(own.length).toBeGreaterThan(0);
    expect(own.every((e) => e.customerId === a)).toBe(true);
    expect(codeOf(await s.failure("listAuditEvents", { customerId: b }, bearer))).toBe("permission_denied");
    const all = (await s.call("listAuditEvents", {}, INTERNAL)).res.data;
    expect(new Set(all.map((e) => e.customerId))).toEqual(new Set([a, b]));
    const onlyB = (await s.call("listAuditEvents", { customerId: b }, INTERNAL)).res.data;
    expect(onlyB.every((e) => e.customerId === b)).toBe(true);
  });
});
