import { randomBytes } from "node:crypto";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { checksum } from "../../src/domain/key-format.js";
import { allRpcClients, type MethodName, type RpcClient, type RpcResult } from "../helpers/rpc-clients.js";
import { uuid } from "../helpers/rest.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * The RPC surface (SPEC §4-§6, issues 3 and 4) against one real server process: the same table of
 * cases over every transport allRpcClients() gives (Connect, gRPC and gRPC-Web on PORT through
 * connect-node, and @grpc/grpc-js on PORT and on GRPC_PORT). Every case uses fresh customer UUIDs so
 * transports never share a bucket or a key list.
 */

const Code = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  UNAUTHENTICATED: 16,
} as const;

/** The transports allRpcClients() must return for a server with GRPC_PORT (issue 4). */
const TRANSPORTS = ["connect", "grpc (connect-es client)", "grpc-web", "grpc-js -> PORT", "grpc-js -> GRPC_PORT"];

let server: RunningServer;
let clients: RpcClient[] = [];
let internal: Record<string, string>;

beforeAll(async () => {
  server = await startServer();
  clients = allRpcClients(server);
  internal = { authorization: `Bearer ${server.internalToken}` };
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

function ok<M extends MethodName>(r: RpcResult<M>, what = ""): Extract<RpcResult<M>, { ok: true }>["res"] {
  if (!r.ok) throw new Error(`${what} expected success, got code ${r.code}: ${r.message}`);
  return r.res;
}

function failed<M extends MethodName>(r: RpcResult<M>, code: number, what = ""): string {
  if (r.ok) throw new Error(`${what} expected code ${code}, got success: ${JSON.stringify(r.res, replacer)}`);
  expect(r.code, `${what}: ${r.message}`).toBe(code);
  return r.message;
}
const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/** A key that passes the format and checksum checks but was never issued. */
function neverIssuedKey(): string {
  const body = `zpk_live_${randomBytes(32).toString("base64url")}`;
  return body + checksum(body);
}

/** Same length, same alphabet, last checksum character changed. */
function flipLast(secret: string): string {
  const last = secret[secret.length - 1]!;
  return secret.slice(0, -1) + (last === "A" ? "B" : "A");
}

it("allRpcClients covers every transport, native gRPC on GRPC_PORT included", () => {
  expect(server.grpcPort, "the server must report the grpc-js port it listens on").not.toBeNull();
  expect(clients.map((c) => c.name)).toEqual(TRANSPORTS);
});

describe.each(TRANSPORTS)("over %s", (transport) => {
  let c: RpcClient;
  beforeAll(() => {
    const found = clients.find((x) => x.name === transport);
    if (!found) throw new Error(`no client ${transport}: got ${clients.map((x) => x.name).join(", ")}`);
    c = found;
  });

  /** Issues a key for `customerId` with the internal credential. */
  async function issue(customerId: string, fields: Record<string, unknown> = {}) {
    const res = ok(await c.call("issueKey", { customerId, name: "test-key", ...fields }, internal), "internal IssueKey");
    return { key: res.key!, secret: res.secret };
  }

  async function authenticate(fields: Record<string, unknown>) {
    return ok(await c.call("authenticate", fields, internal), "Authenticate");
  }

  it("an error answer has its gRPC status and no header of ours naming the error code", async () => {
    const customer = uuid();
    const { secret } = ok(await c.call("issueKey", { customerId: customer, name: "k" }, internal));
    const answers = [
      [await c.call("authenticate", { key: "" }, internal), Code.INVALID_ARGUMENT],
      [await c.call("getKey", { customerId: customer, id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B" }, internal), Code.NOT_FOUND],
      [await c.call("authenticate", { key: secret }, bearer(secret)), Code.PERMISSION_DENIED],
      [await c.call("listKeys", {}), Code.UNAUTHENTICATED],
    ] as const;
    for (const [r, code] of answers) {
      failed(r, code);
      if (r.ok) continue;
      const ours = [...r.metadata.keys()].filter((k) => k.startsWith("zpk-"));
      expect(ours, `metadata of a ${code} answer: ${[...r.metadata.keys()].join(", ")}`).toEqual([]);
      expect(r.metadata.get("x-request-id"), "the request id still travels with the error").toBeTruthy();
    }
  });

  it("a gateway's Authenticate and ChargeRateLimit answer without x-request-id unless the caller sent one, which is echoed; other RPCs always carry one", async () => {
    const customer = uuid();
    const { secret } = await issue(customer);
    const calls = [
      () => c.call("authenticate", { key: secret }, internal),
      () => c.call("authenticate", { key: neverIssuedKey() }, internal),
      () => c.call("chargeRateLimit", { customerId: customer, cost: 1 }, internal),
    ];
    for (const call of calls) {
      const quiet = await call();
      if (!quiet.ok) throw new Error(`expected success, got ${quiet.code}`);
      expect(quiet.headers.get("x-request-id"), "no id of ours on a hot success").toBeNull();
    }
    const echoed = await c.call("authenticate", { key: secret }, { ...internal, "x-request-id": "gw-trace-7" });
    expect(echoed.ok && echoed.headers.get("x-request-id")).toBe("gw-trace-7");
    const listed = await c.call("listKeys", { customerId: customer }, internal);
    expect(listed.ok && listed.headers.get("x-request-id")).toMatch(/^req_/);
  });

  describe("key management", () => {
    it("an internal caller issues a key for a customer; the secret is returned once, in the documented format", async () => {
      const customer = uuid();
      const res = ok(
        await c.call(
          "issueKey",
          { customerId: customer, name: "signup-first-key", scopes: ["api_keys:read"], metadata: { plan: "pro" } },
          internal,
        ),
      );
      const key = res.key!;
      expect(res.secret).toMatch(/^zpk_live_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$/);
      expect(key.id).toMatch(/^key_[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(key.customerId).toBe(customer);
      expect(key.name).toBe("signup-first-key");
      expect(key.prefix).toBe(res.secret.slice(0, "zpk_live_".length + 8));
      expect(key.environment).toBe("live");
      expect(key.scopes).toEqual(["api_keys:read"]);
      expect(key.metadata).toEqual({ plan: "pro" });
      expect(key.isActive).toBe(true);
      expect(key.revokedAt).toBeUndefined();
      expect(key.createdAt).toBeDefined();

      const got = ok(await c.call("getKey", { id: key.id, customerId: customer }, internal));
      expect(got.key?.id).toBe(key.id);
      expect(JSON.stringify(got, replacer)).not.toContain(res.secret.slice(9));

      const test = await issue(uuid(), { environment: "test" });
      expect(test.secret).toMatch(/^zpk_test_/);
      expect(test.key.environment).toBe("test");
    });

    it("a customer key gets, lists, issues, updates and revokes its own customer's keys", async () => {
      const customer = uuid();
      const first = await issue(customer, { name: "first" });
      const auth = bearer(first.secret);

      const got = ok(await c.call("getKey", { id: first.key.id }, auth), "GetKey");
      expect(got.key?.name).toBe("first");
      expect(got.key?.customerId).toBe(customer);

      const second = ok(await c.call("issueKey", { name: "second", metadata: { a: "1" } }, auth), "IssueKey");
      expect(second.key?.customerId).toBe(customer);
      expect(second.secret).toMatch(/^zpk_live_/);
      const secondId = second.key!.id;

      const listed = ok(await c.call("listKeys", {}, auth), "ListKeys");
      expect(listed.data.map((k) => k.id)).toEqual([secondId, first.key.id]);

      const updated = ok(
        await c.call("updateKey", { id: secondId, name: "renamed", metadata: { team: "payments" } }, auth),
        "UpdateKey",
      );
      expect(updated.key?.name).toBe("renamed");
      expect(updated.key?.metadata).toEqual({ team: "payments" });
      expect(ok(await c.call("getKey", { id: secondId }, auth)).key?.name).toBe("renamed");

      const revoked = ok(await c.call("revokeKey", { id: secondId }, auth), "RevokeKey");
      expect(revoked.key?.isActive).toBe(false);
      expect(revoked.key?.revokedAt).toBeDefined();
      const revokedAt = timestampMs(revoked.key!.revokedAt!);

      // a second revoke is a no-op success that keeps the first revocation time
      const again = ok(await c.call("revokeKey", { id: secondId }, auth), "second RevokeKey");
      expect(timestampMs(again.key!.revokedAt!)).toBe(revokedAt);

      const active = ok(await c.call("listKeys", {}, auth));
      expect(active.data.map((k) => k.id)).toEqual([first.key.id]);
      const all = ok(await c.call("listKeys", { includeInactive: true }, auth));
      expect(all.data.map((k) => k.id)).toEqual([secondId, first.key.id]);

      // one api_key.revoked event, not two
      const events = ok(await c.call("listAuditEvents", { action: "api_key.revoked" }, auth), "ListAuditEvents");
      expect(events.data.filter((e) => e.target?.keyId === secondId)).toHaveLength(1);
    });

    it("another customer's key id is NOT_FOUND for get, update and revoke, and nothing changes", async () => {
      const a = await issue(uuid(), { name: "a-key" });
      const b = await issue(uuid());
      const asB = bearer(b.secret);

      failed(await c.call("getKey", { id: a.key.id }, asB), Code.NOT_FOUND, "GetKey");
      failed(await c.call("updateKey", { id: a.key.id, name: "hijacked" }, asB), Code.NOT_FOUND, "UpdateKey");
      failed(await c.call("revokeKey", { id: a.key.id }, asB), Code.NOT_FOUND, "RevokeKey");
      expect(ok(await c.call("listKeys", {}, asB)).data.map((k) => k.id)).toEqual([b.key.id]);

      // an id that does not exist at all is the same NOT_FOUND
      failed(await c.call("getKey", { id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B" }, asB), Code.NOT_FOUND, "GetKey unknown id");
      failed(await c.call("getKey", { id: "nonsense" }, asB), Code.NOT_FOUND, "GetKey junk id");

      // an internal caller naming the wrong customer gets NOT_FOUND too
      failed(await c.call("getKey", { id: a.key.id, customerId: b.key.customerId }, internal), Code.NOT_FOUND, "internal GetKey");

      const still = ok(await c.call("getKey", { id: a.key.id }, bearer(a.secret)));
      expect(still.key?.name).toBe("a-key");
      expect(still.key?.isActive).toBe(true);
      expect((await authenticate({ key: a.secret })).valid).toBe(true);
    });

    it("a bad customer_id or name is INVALID_ARGUMENT", async () => {
      failed(await c.call("issueKey", { customerId: "not-a-uuid", name: "x" }, internal), Code.INVALID_ARGUMENT, "bad customer_id");
      failed(await c.call("issueKey", { customerId: "", name: "x" }, internal), Code.INVALID_ARGUMENT, "missing customer_id");
      failed(await c.call("listKeys", { customerId: "1234" }, internal), Code.INVALID_ARGUMENT, "ListKeys bad customer_id");

      const customer = uuid();
      const msg = failed(await c.call("issueKey", { customerId: customer, name: "" }, internal), Code.INVALID_ARGUMENT, "empty name");
      expect(msg).toMatch(/name/);
      failed(await c.call("issueKey", { customerId: customer, name: "   " }, internal), Code.INVALID_ARGUMENT, "blank name");
      failed(await c.call("issueKey", { customerId: customer, name: "x".repeat(129) }, internal), Code.INVALID_ARGUMENT, "long name");
      // nothing was issued by the refused calls
      expect(ok(await c.call("listKeys", { customerId: customer, includeInactive: true }, internal)).data).toEqual([]);

      // the same rule for a customer key
      const k = await issue(customer);
      failed(await c.call("issueKey", { name: "y".repeat(200) }, bearer(k.secret)), Code.INVALID_ARGUMENT, "customer long name");
      failed(await c.call("updateKey", { id: k.key.id, name: "z".repeat(129) }, bearer(k.secret)), Code.INVALID_ARGUMENT, "update long name");
    });

    it("calls without credentials, or with a key that is not one, are UNAUTHENTICATED", async () => {
      failed(await c.call("listKeys", {}), Code.UNAUTHENTICATED, "ListKeys");
      failed(await c.call("getKey", { id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B" }), Code.UNAUTHENTICATED, "GetKey");
      failed(await c.call("issueKey", { name: "x", customerId: uuid() }), Code.UNAUTHENTICATED, "IssueKey");
      failed(await c.call("authenticate", { key: neverIssuedKey() }), Code.UNAUTHENTICATED, "Authenticate");
      failed(await c.call("chargeRateLimit", { customerId: uuid() }), Code.UNAUTHENTICATED, "ChargeRateLimit");
      failed(await c.call("listKeys", {}, bearer(neverIssuedKey())), Code.UNAUTHENTICATED, "unknown key");
      failed(await c.call("chargeRateLimit", { customerId: uuid() }, bearer("wrong-internal-token")), Code.UNAUTHENTICATED, "wrong token");
    });

    it("a customer key cannot reach the internal RPCs: PERMISSION_DENIED", async () => {
      const k = await issue(uuid());
      const auth = bearer(k.secret);
      failed(await c.call("authenticate", { key: k.secret }, auth), Code.PERMISSION_DENIED, "Authenticate");
      failed(await c.call("chargeRateLimit", { customerId: k.key.customerId }, auth), Code.PERMISSION_DENIED, "ChargeRateLimit");
      failed(
        await c.call("setRateLimit", { customerId: k.key.customerId, capacity: 100000, refillPerSecond: 1000 }, auth),
        Code.PERMISSION_DENIED,
        "SetRateLimit",
      );
      // and the refused SetRateLimit did not take effect
      const charge = ok(await c.call("chargeRateLimit", { customerId: k.key.customerId }, internal));
      expect(charge.limit).toBe(60);
    });
  });

  describe("Authenticate", () => {
    it("a good key is valid and returns its principal", async () => {
      const customer = uuid();
      const { key, secret } = await issue(customer, { scopes: ["orders:read", "api_keys:read"], metadata: { tier: "gold" } });
      const res = await authenticate({ key: secret, clientIp: "203.0.113.7", userAgent: "gateway/1.0" });
      expect(res.valid).toBe(true);
      expect(res.denialReason).toBe(DenialReason.UNSPECIFIED);
      expect(res.principal).toMatchObject({
        keyId: key.id,
        customerId: customer,
        instanceId: "",
        environment: "live",
        prefix: key.prefix,
        metadata: { tier: "gold" },
      });
      expect([...res.principal!.scopes].sort()).toEqual(["api_keys:read", "orders:read"]);
    });

    it("a key's update, disabling and revocation show in the very next Authenticate, after answers for the old key were served", async () => {
      const customer = uuid();
      const { key, secret } = await issue(customer, { metadata: { tier: "gold" } });
      for (let i = 0; i < 3; i++) expect((await authenticate({ key: secret })).principal?.metadata).toEqual({ tier: "gold" });

      ok(await c.call("updateKey", { id: key.id, customerId: customer, metadata: { tier: "silver" } }, internal), "UpdateKey metadata");
      const updated = await authenticate({ key: secret });
      expect(updated.valid).toBe(true);
      expect(updated.principal?.metadata).toEqual({ tier: "silver" });

      ok(await c.call("updateKey", { id: key.id, customerId: customer, enabled: false }, internal), "UpdateKey disable");
      const disabled = await authenticate({ key: secret });
      expect(disabled.valid).toBe(false);
      expect(disabled.denialReason).toBe(DenialReason.DISABLED);
      expect(disabled.principal).toBeUndefined();

      ok(await c.call("updateKey", { id: key.id, customerId: customer, enabled: true }, internal), "UpdateKey enable");
      expect((await authenticate({ key: secret })).principal?.metadata).toEqual({ tier: "silver" });

      ok(await c.call("revokeKey", { id: key.id, customerId: customer }, internal), "RevokeKey");
      const revoked = await authenticate({ key: secret });
      expect(revoked.valid).toBe(false);
      expect(revoked.denialReason).toBe(DenialReason.REVOKED);
    });

    it("MALFORMED: one changed checksum character, a wrong prefix, garbage", async () => {
      const { secret } = await issue(uuid());
      for (const bad of [flipLast(secret), secret.replace("zpk_live_", "zpk_prod_"), secret.slice(0, -1), "hello", "x".repeat(5000)]) {
        const res = await authenticate({ key: bad });
        expect(res.valid, bad.slice(0, 40)).toBe(false);
        expect(res.denialReason, bad.slice(0, 40)).toBe(DenialReason.MALFORMED);
        expect(res.principal).toBeUndefined();
      }
      expect((await authenticate({ key: secret })).valid).toBe(true);
    });

    it("UNKNOWN: a well-formed key that was never issued", async () => {
      const res = await authenticate({ key: neverIssuedKey() });
      expect(res.valid).toBe(false);
      expect(res.denialReason).toBe(DenialReason.UNKNOWN);
      expect(res.principal).toBeUndefined();
    });

    it("EXPIRED: valid until expires_at, denied after", async () => {
      const customer = uuid();
      const expiresAt = Date.now() + 2000;
      const { secret } = await issue(customer, { expiresAt: timestampFromMs(expiresAt) });
      expect((await authenticate({ key: secret })).valid).toBe(true);
      await sleep(Math.max(0, expiresAt - Date.now()) + 100);
      const res = await authenticate({ key: secret });
      expect(res.valid).toBe(false);
      expect(res.denialReason).toBe(DenialReason.EXPIRED);
    });

    it("WRONG_INSTANCE: a bound key used for another instance; an unbound key may access any", async () => {
      const customer = uuid();
      const instance = uuid();
      const bound = await issue(customer, { instanceId: instance });
      const other = await authenticate({ key: bound.secret, instanceId: uuid() });
      expect(other.valid).toBe(false);
      expect(other.denialReason).toBe(DenialReason.WRONG_INSTANCE);

      const same = await authenticate({ key: bound.secret, instanceId: instance });
      expect(same.valid).toBe(true);
      expect(same.principal?.instanceId).toBe(instance);

      const unbound = await issue(customer);
      expect((await authenticate({ key: unbound.secret, instanceId: uuid() })).valid).toBe(true);
    });

    it("MISSING_SCOPE: every required scope must be granted; an unrestricted key has them all", async () => {
      const customer = uuid();
      const restricted = await issue(customer, { scopes: ["orders:read", "orders:list"] });
      const missing = await authenticate({ key: restricted.secret, requiredScopes: ["orders:read", "orders:write"] });
      expect(missing.valid).toBe(false);
      expect(missing.denialReason).toBe(DenialReason.MISSING_SCOPE);

      expect((await authenticate({ key: restricted.secret, requiredScopes: ["orders:read", "orders:list"] })).valid).toBe(true);
      expect((await authenticate({ key: restricted.secret, requiredScopes: [] })).valid).toBe(true);

      const unrestricted = await issue(customer);
      expect((await authenticate({ key: unrestricted.secret, requiredScopes: ["anything:at_all", "orders:write"] })).valid).toBe(true);
    });

    it("RATE_LIMITED: a charge on a drained bucket is denied and takes nothing; charge 0 still passes", async () => {
      const customer = uuid();
      const { secret } = await issue(customer);
      const drained = ok(await c.call("chargeRateLimit", { customerId: customer, cost: 50 }, internal), "drain");
      expect(drained).toMatchObject({ allowed: true, remaining: 10 });

      // 20 missing tokens cannot refill in the few seconds this takes, even on a loaded machine
      const res = await authenticate({ key: secret, charge: 30 });
      expect(res.valid).toBe(false);
      expect(res.denialReason).toBe(DenialReason.RATE_LIMITED);
      expect(res.principal).toBeUndefined();
      expect(res.rateLimit?.limit).toBe(60);
      expect(res.rateLimit?.remaining).toBeGreaterThanOrEqual(10);
      expect(res.rateLimit?.remaining).toBeLessThan(30);
      expect(res.rateLimit?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      // the refused charge took nothing: the 10 tokens are still there
      const after = ok(await c.call("chargeRateLimit", { customerId: customer, cost: 10 }, internal));
      expect(after.allowed).toBe(true);

      // no charge asked: not rate-limited
      const free = await authenticate({ key: secret });
      expect(free.valid).toBe(true);

      // an allowed charge reports the bucket
      const other = await issue(uuid());
      const charged = await authenticate({ key: other.secret, charge: 5 });
      expect(charged.valid).toBe(true);
      expect(charged.rateLimit?.limit).toBe(60);
      expect(charged.rateLimit?.remaining).toBe(55);
    });

    it("an empty key is INVALID_ARGUMENT, not a denial", async () => {
      failed(await c.call("authenticate", { key: "" }, internal), Code.INVALID_ARGUMENT, "empty key");
    });
  });

  describe("ChargeRateLimit and SetRateLimit", () => {
    it("a fresh customer gets 60 tokens: 60 charges allowed, the 61st refused with a retry-after", async () => {
      const customer = uuid();
      const started = Date.now();
      // 61 at once: the bucket must also never hand out the same token twice
      const results = await Promise.all(
        Array.from({ length: 61 }, () => c.call("chargeRateLimit", { customerId: customer }, internal)),
      );
      const elapsed = Date.now() - started;
      const charges = results.map((r, i) => ok(r, `charge ${i + 1}`));
      expect(charges.every((r) => r.limit === 60)).toBe(true);
      const allowed = charges.filter((r) => r.allowed);
      // SPEC §6: never more than capacity + elapsed × rate admitted (1/s). When the calls take under
      // a second, as they do on an idle machine, that is exactly 60 and the 61st is refused; a loaded
      // machine may legitimately have refilled a token per elapsed second.
      expect(allowed.length).toBeGreaterThanOrEqual(60);
      expect(allowed.length, `elapsed ${elapsed} ms`).toBeLessThanOrEqual(60 + Math.floor(elapsed / 1000));
      if (elapsed < 1000) {
        expect(allowed.map((r) => r.remaining).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
      }

      // the bucket is empty: charging on is refused (at most a few refilled tokens in between)
      let refused = charges.find((r) => !r.allowed);
      for (let i = 0; !refused && i < 10; i++) {
        const r = ok(await c.call("chargeRateLimit", { customerId: customer }, internal));
        if (!r.allowed) refused = r;
      }
      expect(refused, "no charge was refused").toBeDefined();
      expect(refused!.limit).toBe(60);
      expect(refused!.remaining).toBe(0);
      expect(refused!.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(refused!.resetAt).toBeDefined();
      expect(timestampMs(refused!.resetAt!)).toBeGreaterThan(started);
    });

    it("a refused charge takes nothing", async () => {
      const customer = uuid();
      const first = ok(await c.call("chargeRateLimit", { customerId: customer, cost: 50 }, internal));
      expect(first).toMatchObject({ allowed: true, remaining: 10 });
      const refused = ok(await c.call("chargeRateLimit", { customerId: customer, cost: 20 }, internal));
      expect(refused.allowed).toBe(false);
      // still the 10 left (plus whatever refilled meanwhile), not 10 - 20
      expect(refused.remaining).toBeGreaterThanOrEqual(10);
      expect(refused.remaining).toBeLessThan(20);
      expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      // so the 10 tokens are still there to spend
      const rest = ok(await c.call("chargeRateLimit", { customerId: customer, cost: 10 }, internal));
      expect(rest.allowed).toBe(true);
    });

    it("cost over capacity or a malformed customer id is INVALID_ARGUMENT and takes nothing", async () => {
      const customer = uuid();
      failed(await c.call("chargeRateLimit", { customerId: customer, cost: 61 }, internal), Code.INVALID_ARGUMENT, "cost 61");
      failed(await c.call("chargeRateLimit", { customerId: "not-a-uuid" }, internal), Code.INVALID_ARGUMENT, "bad customer");
      failed(await c.call("chargeRateLimit", { customerId: "" }, internal), Code.INVALID_ARGUMENT, "empty customer");
      const r = ok(await c.call("chargeRateLimit", { customerId: customer }, internal));
      expect(r).toMatchObject({ allowed: true, remaining: 59 });

      // Authenticate's charge follows the same rule
      const k = await issue(uuid());
      failed(await c.call("authenticate", { key: k.secret, charge: 61 }, internal), Code.INVALID_ARGUMENT, "Authenticate charge 61");
      const after = await authenticate({ key: k.secret, charge: 1 });
      expect(after.valid).toBe(true);
      expect(after.rateLimit?.remaining).toBe(59);
    });

    it("SetRateLimit raises a customer's capacity and the next charges use it", async () => {
      const customer = uuid();
      const set = ok(
        await c.call("setRateLimit", { customerId: customer, capacity: 200, refillPerSecond: 5 }, internal),
        "SetRateLimit",
      );
      expect(set).toMatchObject({ customerId: customer, capacity: 200, refillPerSecond: 5 });

      const big = ok(await c.call("chargeRateLimit", { customerId: customer, cost: 150 }, internal), "charge 150");
      expect(big).toMatchObject({ allowed: true, limit: 200, remaining: 50 });

      // the same bucket serves Authenticate's charge
      const { secret } = await issue(customer);
      const auth = await authenticate({ key: secret, charge: 10 });
      expect(auth.valid).toBe(true);
      expect(auth.rateLimit?.limit).toBe(200);
      // the bucket the 150 were taken from (a fresh one would have 190 left)
      expect(auth.rateLimit?.remaining).toBeGreaterThanOrEqual(40);
      expect(auth.rateLimit?.remaining).toBeLessThan(150);

      // other customers keep the defaults
      const other = ok(await c.call("chargeRateLimit", { customerId: uuid() }, internal));
      expect(other.limit).toBe(60);
      failed(await c.call("chargeRateLimit", { customerId: uuid(), cost: 150 }, internal), Code.INVALID_ARGUMENT, "default capacity");
    });

    it("SetRateLimit on a bucket already in use: the next charge reports the new limit", async () => {
      const customer = uuid();
      expect(ok(await c.call("chargeRateLimit", { customerId: customer }, internal)).limit).toBe(60);
      ok(await c.call("setRateLimit", { customerId: customer, capacity: 120, refillPerSecond: 2 }, internal), "SetRateLimit");
      const next = ok(await c.call("chargeRateLimit", { customerId: customer }, internal));
      expect(next.allowed).toBe(true);
      expect(next.limit).toBe(120);
      // cost 100 is within the new capacity: a normal answer, not INVALID_ARGUMENT
      ok(await c.call("chargeRateLimit", { customerId: customer, cost: 100 }, internal), "cost 100 under capacity 120");
    });

    it("SetRateLimit rejects a bad policy or customer with INVALID_ARGUMENT", async () => {
      failed(await c.call("setRateLimit", { customerId: uuid(), capacity: 0, refillPerSecond: 1 }, internal), Code.INVALID_ARGUMENT, "capacity 0");
      failed(await c.call("setRateLimit", { customerId: uuid(), capacity: 10, refillPerSecond: 0 }, internal), Code.INVALID_ARGUMENT, "refill 0");
      failed(await c.call("setRateLimit", { customerId: "nope", capacity: 10, refillPerSecond: 1 }, internal), Code.INVALID_ARGUMENT, "bad customer");
    });
  });
});
