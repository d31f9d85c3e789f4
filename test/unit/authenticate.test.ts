import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { ApiError } from "../../src/domain/errors.js";
import { INTERNAL, unitService } from "../helpers/unit-service.js";

/**
 * The Authenticate RPC and the customer-key path of every call (SPEC §4, §5): denials are answers
 * with a reason, in a fixed order of checks, every denial is audited, and a refused request never
 * takes a rate-limit token.
 */
const codeOf = (e: { cause?: unknown }) => (e.cause instanceof ApiError ? e.cause.code : "not an ApiError");

describe("Authenticate", () => {
  it("a valid key answers its principal and the bucket's state after the charge", async () => {
    const s = unitService({ capacity: 10 });
    const customer = randomUUID();
    const instance = randomUUID();
    const { key, secret } = await s.issue(customer, { instanceId: instance, scopes: ["orders:read"], metadata: { plan: "pro" } });
    const { res } = await s.call("authenticate", { key: secret, instanceId: instance, requiredScopes: ["orders:read"], charge: 3 }, INTERNAL);
    expect(res.valid).toBe(true);
    expect(res.principal).toMatchObject({ keyId: key.id, customerId: customer, instanceId: instance, scopes: ["orders:read"], prefix: key.prefix, metadata: { plan: "pro" } });
    expect(res.rateLimit).toMatchObject({ limit: 10, remaining: 7 });
  });

  it("checks in order: format, existence, revocation, expiry, instance, scopes, then the charge", async () => {
    const s = unitService({ capacity: 1 });
    const customer = randomUUID();
    const instance = randomUUID();
    const auth = async (key: string, over: { instanceId?: string; requiredScopes?: string[]; charge?: number } = {}) =>
      (await s.call("authenticate", { key, instanceId: randomUUID(), requiredScopes: ["admin"], charge: 1, ...over }, INTERNAL)).res.denialReason;

    expect(await auth("zpk_live_short")).toBe(DenialReason.MALFORMED);
    const genuine = (await s.issue(randomUUID())).secret;
    const forged = genuine.slice(0, 9) + (genuine[9] === "A" ? "B" : "A") + genuine.slice(10);
    expect(await auth(forged)).toBe(DenialReason.MALFORMED); // checksum fails: no lookup
    const { key, secret } = await s.issue(customer, { instanceId: instance, scopes: ["orders:read"], expiresAt: timestampFromMs(s.clock.ms + 1000) });
    expect(await auth(secret.slice(0, -6) + "AAAAAA")).toBe(DenialReason.MALFORMED);

    // Wrong instance and scope: the instance is reported; then the scope; neither takes the one token.
    const right = { instanceId: instance, requiredScopes: ["orders:read"] };
    expect(await auth(secret)).toBe(DenialReason.WRONG_INSTANCE);
    expect(await auth(secret, { instanceId: instance })).toBe(DenialReason.MISSING_SCOPE);
    expect(await auth(secret, right)).toBe(DenialReason.UNSPECIFIED); // valid: takes the one token
    expect(await auth(secret, right)).toBe(DenialReason.RATE_LIMITED);
    // Expired (and the bucket refilled): expiry is reported before instance, scope and charge.
    s.clock.advance(1000);
    expect(await auth(secret)).toBe(DenialReason.EXPIRED);
    // Revoked and expired: revocation is reported.
    await s.call("revokeKey", { customerId: customer, id: key.id }, INTERNAL);
    expect(await auth(secret)).toBe(DenialReason.REVOKED);
  });

  it("an unknown key in the right format is UNKNOWN", async () => {
    const s = unitService();
    const { secret, key } = await s.issue(randomUUID());
    await s.call("revokeKey", { customerId: key.customerId, id: key.id }, INTERNAL);
    // A well-formed key that was never issued: re-checksum a changed body.
    const { checksum } = await import("../../src/domain/key-format.js");
    const body = secret.slice(0, -6);
    const other = body.slice(0, -1) + (body.endsWith("A") ? "B" : "A");
    const { res } = await s.call("authenticate", { key: other + checksum(other) }, INTERNAL);
    expect(res.denialReason).toBe(DenialReason.UNKNOWN);
  });

  it("a denied request takes no token: refusals before the charge leave the bucket full", async () => {
    const s = unitService({ capacity: 2, refillPerSecond: 0.001 });
    const customer = randomUUID();
    const { secret } = await s.issue(customer, { scopes: ["a:b"] });
    for (let i = 0; i < 5; i++) {
      const { res } = await s.call("authenticate", { key: secret, requiredScopes: ["c:d"], charge: 1 }, INTERNAL);
      expect(res.denialReason).toBe(DenialReason.MISSING_SCOPE);
    }
    const allowed = [];
    for (let i = 0; i < 3; i++) allowed.push((await s.call("authenticate", { key: secret, charge: 1 }, INTERNAL)).res.valid);
    expect(allowed).toEqual([true, true, false]);
  });

  it("an empty key or a bad instance_id is invalid_argument; charge 0 takes no token", async () => {
    const s = unitService({ capacity: 1, refillPerSecond: 0.001 });
    const { secret } = await s.issue(randomUUID());
    expect(codeOf(await s.failure("authenticate", { key: "" }, INTERNAL))).toBe("invalid_argument");
    expect(codeOf(await s.failure("authenticate", { key: secret, instanceId: "x" }, INTERNAL))).toBe("invalid_argument");
    for (let i = 0; i < 3; i++) {
      const { res } = await s.call("authenticate", { key: secret }, INTERNAL);
      expect(res.valid).toBe(true);
      expect(res.rateLimit).toBeUndefined();
    }
    expect((await s.call("authenticate", { key: secret, charge: 1 }, INTERNAL)).res.valid).toBe(true);
  });

  it("only the internal credential may call it; a customer key or a wrong token is refused", async () => {
    const s = unitService();
    const { secret, bearer } = await s.issue(randomUUID());
    expect(codeOf(await s.failure("authenticate", { key: secret }, bearer))).toBe("permission_denied");
    expect(codeOf(await s.failure("authenticate", { key: secret }, "Bearer not-the-token"))).toBe("unauthenticated");
    expect(codeOf(await s.failure("authenticate", { key: secret }, null, { "x-api-key": secret }))).toBe("permission_denied");
    // The internal token counts only as authorization: Bearer, never in x-api-key.
    expect(codeOf(await s.failure("authenticate", { key: secret }, null, { "x-api-key": INTERNAL.slice(7) }))).toBe("unauthenticated");
  });
});

describe("every denial is audited", () => {
  it("a known key's repeated denials are one auth.failed event per (key, reason, source) and interval, with its reason, target, the gateway's client and a count", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key, secret } = await s.issue(customer, { scopes: ["a:b"] });
    for (let i = 0; i < 2; i++) {
      await s.call("authenticate", { key: secret, requiredScopes: ["x:y"], clientIp: "203.0.113.7", userAgent: "gw-client" }, INTERNAL);
    }
    await s.flush();
    const failed = s.store.auditEvents().filter((e) => e.action === "auth.failed");
    expect(failed).toHaveLength(1); // issue 12: a revoked key's flood cannot grow the trail per request
    expect(failed[0]).toMatchObject({
      customerId: customer, outcome: "failure", reason: "missing_scope", ip: "203.0.113.7", userAgent: "gw-client",
      target: { keyId: key.id, prefix: key.prefix }, count: 2,
    });
  });

  it("a flood of unknown or malformed keys becomes one event per reason and source, with a count", async () => {
    const s = unitService();
    for (let i = 0; i < 40; i++) await s.call("authenticate", { key: `zpk_live_garbage${i}`, clientIp: "198.51.100.1" }, INTERNAL);
    for (let i = 0; i < 10; i++) await s.call("authenticate", { key: `zpk_live_garbage${i}`, clientIp: "198.51.100.2" }, INTERNAL);
    await s.flush();
    const failed = s.store.auditEvents().filter((e) => e.action === "auth.failed");
    expect(failed.map((e) => [e.ip, e.reason, e.count]).sort()).toEqual([
      ["198.51.100.1", "malformed", 40],
      ["198.51.100.2", "malformed", 10],
    ]);
    expect(failed.every((e) => e.customerId === null && e.actor.type === "anonymous")).toBe(true);
  });
});

describe("a customer key on its own calls", () => {
  it("is charged one token per call, answers x-ratelimit-* and is refused with retry-after when empty", async () => {
    const s = unitService({ capacity: 2, refillPerSecond: 0.5 });
    const customer = randomUUID();
    const { bearer } = await s.issue(customer);
    const first = await s.call("listKeys", {}, bearer);
    expect(first.headers.get("x-ratelimit-limit")).toBe("2");
    expect(first.headers.get("x-ratelimit-remaining")).toBe("1");
    await s.call("listKeys", {}, bearer);
    const refused = await s.failure("listKeys", {}, bearer);
    expect(codeOf(refused)).toBe("rate_limited");
    expect(refused.metadata.get("retry-after")).toBe("2");
    s.clock.advance(2000);
    expect((await s.call("listKeys", {}, bearer)).headers.get("x-ratelimit-remaining")).toBe("0");
    await s.flush();
    expect(s.store.auditEvents().filter((e) => e.action === "rate_limit.exceeded").map((e) => e.count)).toEqual([1]);
  });

  it("a malformed authorization header, none at all, or an unknown key is unauthenticated", async () => {
    const s = unitService();
    expect(codeOf(await s.failure("listKeys", {}, "Basic abc"))).toBe("unauthenticated");
    expect(codeOf(await s.failure("listKeys", {}, null))).toBe("unauthenticated");
    expect(codeOf(await s.failure("listKeys", {}, "Bearer zpk_live_nope"))).toBe("unauthenticated");
  });

  it("an expired key is key_expired, a revoked one key_revoked", async () => {
    const s = unitService();
    const customer = randomUUID();
    const expiring = await s.issue(customer, { expiresAt: timestampFromMs(s.clock.ms + 10) });
    const revoked = await s.issue(customer);
    await s.call("revokeKey", { customerId: customer, id: revoked.key.id }, INTERNAL);
    s.clock.advance(10);
    expect(codeOf(await s.failure("listKeys", {}, expiring.bearer))).toBe("key_expired");
    expect(codeOf(await s.failure("listKeys", {}, revoked.bearer))).toBe("key_revoked");
  });
});
