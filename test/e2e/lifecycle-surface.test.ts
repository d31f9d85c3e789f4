import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allLifecycleApis, type ApiResult, type LifecycleApi, passesWithin as eventually } from "../helpers/lifecycle-api.js";
import { uuid } from "../helpers/rest.js";
import { SECRET_PATTERN, specChecksum } from "../helpers/rest-support.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Issue 13 on every transport: one table of cases looped over REST and every RPC client
 * (Connect, gRPC and gRPC-Web on PORT, grpc-js on PORT and on GRPC_PORT), against one real server
 * on the embedded store (lifecycle-stores.test.ts runs the multi-process cases on both stores).
 * Every case uses a fresh customer.
 */
const GRPC = { INVALID_ARGUMENT: 3, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, ABORTED: 10 } as const;
/** Our code -> [HTTP status, gRPC code], as issue 13 fixes them. */
const CODES: Record<string, [number, number]> = {
  invalid_argument: [400, GRPC.INVALID_ARGUMENT],
  failed_precondition: [400, GRPC.FAILED_PRECONDITION],
  permission_denied: [403, GRPC.PERMISSION_DENIED],
  idempotency_conflict: [409, GRPC.ABORTED],
  already_exists: [409, GRPC.ALREADY_EXISTS],
  not_found: [404, 5],
};

let server: RunningServer;
let apis: LifecycleApi[] = [];
let T: string;

beforeAll(async () => {
  server = await startServer({ RATE_LIMIT_CAPACITY: "100000", IMPORT_PREFIXES: "acme_,legacy-" });
  apis = allLifecycleApis(server);
  T = server.internalToken;
});
afterAll(async () => {
  for (const a of apis) a.close();
  await server?.stop();
});

const TRANSPORTS = ["rest", "connect", "grpc (connect-es client)", "grpc-web", "grpc-js -> PORT", "grpc-js -> GRPC_PORT"];

function ok(r: ApiResult, what = ""): any {
  if (!r.ok) throw new Error(`${what}: expected success, got ${r.code} (${r.status ?? r.grpc}): ${r.message}`);
  return r.body;
}

function refused(r: ApiResult, code: string, what = ""): string {
  if (r.ok) throw new Error(`${what}: expected ${code}, got success ${JSON.stringify(r.body).slice(0, 300)}`);
  expect(r.code, `${what}: ${r.message}`).toBe(code);
  const [http, grpc] = CODES[code]!;
  if (r.status !== undefined) expect(r.status, what).toBe(http);
  else expect(r.grpc, what).toBe(grpc);
  expect(r.message.length, "a message says what is wrong").toBeGreaterThan(5);
  return r.message;
}

describe.each(TRANSPORTS)("over %s", (transport) => {
  let api: LifecycleApi;
  beforeAll(() => {
    api = apis.find((a) => a.name === transport)!;
    expect(api, `client ${transport}`).toBeDefined();
  });

  /** A fresh customer with an unrestricted root key (issued by the internal caller). */
  async function customer() {
    const customerId = uuid();
    const root = ok(await api.call("IssueKey", { customer_id: customerId, name: "root" }, T), "issue root");
    return { customerId, root };
  }
  const issue = async (secret: string, fields: Record<string, unknown> = {}) =>
    ok(await api.call("IssueKey", { name: "k", ...fields } as never, secret), "issue");
  const get = async (secret: string, id: string) => ok(await api.call("GetKey", { id }, secret), "get");
  const audit = async (secret: string, action: string) =>
    ok(await api.call("ListAuditEvents", { action }, secret), "audit").data as any[];

  it("disable / enable: enabled and is_active false, 401 key_disabled / DISABLED, still listed and counted; both audited", async () => {
    const { root } = await customer();
    const k = await issue(root.secret, { name: "to-disable" });
    expect(k.enabled).toBe(true);
    const off = ok(await api.call("UpdateKey", { id: k.id, enabled: false }, root.secret), "disable");
    expect(off).toMatchObject({ id: k.id, enabled: false, is_active: false, revoked_at: null });
    expect(await api.authState(k.secret, T)).toBe("key_disabled");
    const list = ok(await api.call("ListKeys", {}, root.secret));
    expect(list.data.map((x: any) => x.id)).toContain(k.id);
    expect(list.total_size).toBe(2);
    const on = ok(await api.call("UpdateKey", { id: k.id, enabled: true }, root.secret), "enable");
    expect(on).toMatchObject({ enabled: true, is_active: true });
    expect(await api.authState(k.secret, T)).toBe("ok");
    await eventually(async () => {
      expect((await audit(root.secret, "api_key.disabled")).map((e) => e.target.key_id)).toEqual([k.id]);
      expect((await audit(root.secret, "api_key.enabled")).map((e) => e.target.key_id)).toEqual([k.id]);
    });
  });

  it("disabling or enabling a revoked key is failed_precondition; a restricted key cannot disable a stronger one (403)", async () => {
    const { root, customerId } = await customer();
    const k = await issue(root.secret);
    await api.call("UpdateKey", { id: k.id, enabled: false }, root.secret);
    // Revoke through the internal caller (REST DELETE or RevokeKey: same service).
    const revoked = await fetch(`${server.url}/v1/api-keys/${k.id}?customer_id=${customerId}`, { method: "DELETE", headers: { authorization: `Bearer ${T}` } });
    expect(revoked.status).toBe(204);
    refused(await api.call("UpdateKey", { id: k.id, enabled: true }, root.secret), "failed_precondition", "enable revoked");
    refused(await api.call("UpdateKey", { id: k.id, enabled: false }, root.secret), "failed_precondition", "disable revoked");
    expect(await api.authState(k.secret, T)).toBe("key_revoked");

    const writer = await issue(root.secret, { scopes: ["api_keys:write", "api_keys:read"] });
    refused(await api.call("UpdateKey", { id: root.id, enabled: false }, writer.secret), "permission_denied", "disable a stronger key");
    expect(await api.authState(root.secret, T)).toBe("ok");
    const weaker = await issue(writer.secret, { scopes: ["api_keys:read"] });
    ok(await api.call("UpdateKey", { id: weaker.id, enabled: false }, writer.secret), "disable a weaker key");
  });

  it("roll (grace now): the successor copies the key, both point at each other, the old one works until the grace ends; one api_key.rolled event", async () => {
    const { root } = await customer();
    const instance = uuid();
    const k = await issue(root.secret, { name: "app", scopes: ["orders:read"], metadata: { team: "bi" }, instance_id: instance, environment: "test" });
    const before = Date.now();
    const r = await api.call("RollKey", { id: k.id, grace_seconds: 3600 }, root.secret);
    const next = ok(r, "roll");
    if (transport === "rest") {
      expect(r.status).toBe(201);
      expect(r.headers.get("location")).toBe(`/v1/api-keys/${next.id}`);
    }
    expect(next.secret).toMatch(SECRET_PATTERN);
    expect(next.secret.startsWith("zpk_test_")).toBe(true);
    expect(next).toMatchObject({ name: "app", scopes: ["orders:read"], metadata: { team: "bi" }, instance_id: instance,
      environment: "test", rolled_from: k.id, rolled_to: null, expires_at: null, enabled: true, is_active: true });
    expect(next.id).not.toBe(k.id);
    expect(next.hint).toBe(`${next.prefix}…${next.secret.slice(-4)}`);
    const old = await get(root.secret, k.id);
    expect(old.rolled_to).toBe(next.id);
    const cutoff = Date.parse(old.expires_at);
    expect(cutoff).toBeGreaterThanOrEqual(before + 3600_000 - 1000);
    expect(cutoff).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
    expect(await api.authState(k.secret, T)).toBe("ok");
    expect(await api.authState(next.secret, T)).toBe("ok");
    refused(await api.call("RollKey", { id: k.id }, root.secret), "failed_precondition", "roll an already rolled key");
    await eventually(async () => {
      const events = await audit(root.secret, "api_key.rolled");
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ target: { key_id: k.id, prefix: k.prefix, name: "app" }, related_key_id: next.id, outcome: "success" });
      const issued = (await audit(root.secret, "api_key.issued")).map((e) => e.target.key_id);
      expect(issued, "the roll is one api_key.rolled event, not also an issue").not.toContain(next.id);
    });
  });

  it("roll: grace_seconds 0 ends the old key at once (key_expired / EXPIRED); the grace never extends an earlier expiry", async () => {
    const { root } = await customer();
    const k = await issue(root.secret);
    const next = ok(await api.call("RollKey", { id: k.id, grace_seconds: 0 }, root.secret), "roll");
    expect(await api.authState(k.secret, T)).toBe("key_expired");
    expect(await api.authState(next.secret, T)).toBe("ok");
    const soon = new Date(Date.now() + 120_000).toISOString();
    const s = await issue(root.secret, { expires_at: soon });
    ok(await api.call("RollKey", { id: s.id, grace_seconds: 2_592_000 }, root.secret), "30 days is accepted");
    expect(Date.parse((await get(root.secret, s.id)).expires_at)).toBe(Date.parse(soon));
    // The successor has no expiry unless asked; with expires_at it has that one.
    const t = await issue(root.secret);
    const until = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const tn = ok(await api.call("RollKey", { id: t.id, expires_at: until }, root.secret), "roll with expires_at");
    expect(Date.parse(tn.expires_at)).toBe(Date.parse(until));
  });

  it("roll refuses bad input, revoked and expired keys, and keys beyond the caller's rights, writing nothing", async () => {
    const { root, customerId } = await customer();
    const k = await issue(root.secret);
    refused(await api.call("RollKey", { id: k.id, grace_seconds: 2_592_001 }, root.secret), "invalid_argument", "grace over 30 days");
    refused(await api.call("RollKey", { id: k.id, grace_starts: "later" }, root.secret), "invalid_argument", "unknown grace_starts");
    if (transport === "rest") {
      refused(await api.call("RollKey", { id: k.id, grace_seconds: -1 } as never, root.secret), "invalid_argument", "negative grace");
    }
    expect((await get(root.secret, k.id)).rolled_to).toBeNull();

    const writer = await issue(root.secret, { scopes: ["api_keys:write", "api_keys:read"] });
    const msg = refused(await api.call("RollKey", { id: root.id }, writer.secret), "permission_denied", "roll a stronger key");
    expect(msg).not.toContain("zpk_");
    expect((await get(root.secret, root.id)).rolled_to).toBeNull();
    const bound = await issue(root.secret, { instance_id: uuid(), scopes: ["api_keys:write", "api_keys:read"] });
    refused(await api.call("RollKey", { id: k.id }, bound.secret), "not_found", "a bound caller does not see an unbound key");

    await fetch(`${server.url}/v1/api-keys/${k.id}?customer_id=${customerId}`, { method: "DELETE", headers: { authorization: `Bearer ${T}` } });
    refused(await api.call("RollKey", { id: k.id }, root.secret), "failed_precondition", "roll a revoked key");
    const expiring = await issue(root.secret, { expires_at: new Date(Date.now() + 1500).toISOString() });
    await sleep(1700);
    refused(await api.call("RollKey", { id: expiring.id }, root.secret), "failed_precondition", "roll an expired key");
    const list = ok(await api.call("ListKeys", { include_inactive: true }, root.secret));
    expect(list.data.filter((x: any) => x.rolled_from !== null)).toEqual([]);
  });

  it("roll with grace_starts first_use: the old key's clock starts at the new key's first authentication", async () => {
    const { root } = await customer();
    const k = await issue(root.secret);
    const next = ok(await api.call("RollKey", { id: k.id, grace_seconds: 1, grace_starts: "first_use" }, root.secret), "roll");
    expect((await get(root.secret, k.id)).expires_at).toBeNull();
    await sleep(1500);
    expect(await api.authState(k.secret, T), "no first use yet: the old key still works").toBe("ok");
    expect(await api.authState(next.secret, T)).toBe("ok"); // first use
    await eventually(async () => expect((await get(root.secret, k.id)).expires_at).not.toBeNull(), 2000);
    expect(await api.authState(k.secret, T)).toBe("ok"); // within the 1 s grace
    await eventually(async () => expect(await api.authState(k.secret, T)).toBe("key_expired"), 3000);
    expect(await api.authState(next.secret, T)).toBe("ok");
  });

  it("batch issue: up to 100 keys with their secrets, one api_key.issued each; one refused entry refuses the batch", async () => {
    const { root, customerId } = await customer();
    const r = await api.call("BatchIssueKeys", { keys: [{ name: "a" }, { name: "b", scopes: ["x"] }, { name: "c", metadata: { t: "1" } }] }, root.secret);
    const body = ok(r, "batch");
    if (transport === "rest") {
      expect(r.status).toBe(201);
      expect(r.headers.get("location")).toBeNull();
      expect(Object.keys(body)).toEqual(["data"]);
    }
    expect(body.data.map((k: any) => k.name)).toEqual(["a", "b", "c"]);
    for (const k of body.data) {
      expect(k.secret).toMatch(SECRET_PATTERN);
      expect(await api.authState(k.secret, T)).toBe("ok");
    }
    expect(ok(await api.call("ListKeys", {}, root.secret)).total_size).toBe(4);
    await eventually(async () => expect(await audit(root.secret, "api_key.issued")).toHaveLength(4));

    const limited = await issue(root.secret, { scopes: ["api_keys:write", "api_keys:read", "x"] });
    const msg = refused(await api.call("BatchIssueKeys", { keys: [{ name: "ok", scopes: ["x"] }, { name: "bad", scopes: ["y"] }] }, limited.secret), "permission_denied");
    expect(msg).toContain("keys[1]");
    refused(await api.call("BatchIssueKeys", { keys: [{ name: "ok" }, { name: "" }] }, root.secret), "invalid_argument", "blank name");
    refused(await api.call("BatchIssueKeys", { keys: [] }, root.secret), "invalid_argument", "empty");
    refused(await api.call("BatchIssueKeys", { keys: Array.from({ length: 101 }, (_, i) => ({ name: `k${i}` })) }, root.secret), "invalid_argument", "101");
    expect(ok(await api.call("ListKeys", {}, root.secret)).total_size).toBe(5);
    const hundred = ok(await api.call("BatchIssueKeys", { customer_id: customerId, keys: Array.from({ length: 100 }, (_, i) => ({ name: `k${i}` })) }, T), "100 as internal");
    expect(hundred.data).toHaveLength(100);
    expect(ok(await api.call("ListKeys", { customer_id: customerId }, T)).total_size).toBe(105);
  });

  it("Idempotency-Key: a retry replays the first answer, secret included; other parameters 409; scoped to the customer; header checked", async () => {
    const { root, customerId } = await customer();
    const h = { "idempotency-key": `idem-${randomBytes(8).toString("hex")}` };
    const first = ok(await api.call("IssueKey", { name: "once" }, root.secret, h), "first");
    const again = ok(await api.call("IssueKey", { name: "once" }, root.secret, h), "retry");
    expect(again.id).toBe(first.id);
    expect(again.secret).toBe(first.secret);
    refused(await api.call("IssueKey", { name: "other" }, root.secret, h), "idempotency_conflict", "other params");
    // Another key of the same customer shares the records…
    const sibling = await issue(root.secret, { name: "sibling" });
    expect(ok(await api.call("IssueKey", { name: "once" }, sibling.secret, h)).id).toBe(first.id);
    // …another customer never does.
    const other = await customer();
    expect(ok(await api.call("IssueKey", { name: "once" }, other.root.secret, h)).id).not.toBe(first.id);
    expect(ok(await api.call("ListKeys", {}, root.secret)).total_size).toBe(3);

    refused(await api.call("IssueKey", { name: "x" }, root.secret, { "idempotency-key": "k".repeat(256) }), "invalid_argument", "256 chars");
    if (!transport.startsWith("grpc-js")) {
      // (grpc-js refuses to send non-ASCII metadata at all.)
      refused(await api.call("IssueKey", { name: "x" }, root.secret, { "idempotency-key": "caf\u00e9" }), "invalid_argument", "non-ASCII");
    }

    const hb = { "idempotency-key": `batch-${randomBytes(8).toString("hex")}` };
    const b1 = ok(await api.call("BatchIssueKeys", { customer_id: customerId, keys: [{ name: "a" }, { name: "b" }] }, T, hb));
    const b2 = ok(await api.call("BatchIssueKeys", { customer_id: customerId, keys: [{ name: "a" }, { name: "b" }] }, T, hb));
    expect(b2.data.map((k: any) => k.secret)).toEqual(b1.data.map((k: any) => k.secret));
    const k = await issue(root.secret);
    const hr = { "idempotency-key": `roll-${randomBytes(8).toString("hex")}` };
    const r1 = ok(await api.call("RollKey", { id: k.id }, root.secret, hr));
    const r2 = ok(await api.call("RollKey", { id: k.id }, root.secret, hr));
    expect(r2).toMatchObject({ id: r1.id, secret: r1.secret });
    refused(await api.call("RollKey", { id: k.id, grace_seconds: 5 }, root.secret, hr), "idempotency_conflict");
  });

  it("listing: metadata.<name>=<value> filters (AND, URL-decoded), total_size of the filtered set, hint on every key", async () => {
    const { root } = await customer();
    const a = await issue(root.secret, { metadata: { team: "bi", tier: "gold & silver" } });
    const b = await issue(root.secret, { metadata: { team: "bi", tier: "bronze" } });
    await issue(root.secret, { metadata: { team: "ops" } });
    const bi = ok(await api.call("ListKeys", { metadata: { team: "bi" } }, root.secret));
    expect(bi.data.map((k: any) => k.id)).toEqual([b.id, a.id]);
    expect(bi.total_size).toBe(2);
    const gold = ok(await api.call("ListKeys", { metadata: { team: "bi", tier: "gold & silver" } }, root.secret));
    expect(gold.data.map((k: any) => k.id)).toEqual([a.id]);
    expect(gold.total_size).toBe(1);
    const paged = ok(await api.call("ListKeys", { page_size: 1 }, root.secret));
    expect(paged.data).toHaveLength(1);
    expect(paged.total_size).toBe(4);
    expect(typeof paged.total_size).toBe("number");
    expect(a.hint).toBe(`${a.prefix}…${a.secret.slice(-4)}`);
    expect((await get(root.secret, a.id)).hint).toBe(a.hint);
    expect(bi.data[1].hint).toBe(a.hint);
  });

  // ImportKeys has no REST route (an internal migration call): RPC transports only.
  if (transport !== "rest") it("ImportKeys (internal only): by digest or plaintext, legacy prefixes only when registered, duplicates already_exists", async () => {
    const customerId = uuid();
    const body = `zpk_live_${randomBytes(32).toString("base64url")}`;
    const ours = body + specChecksum(body);
    const legacy = `acme_${randomBytes(24).toString("hex")}`;
    const unregistered = `other_${randomBytes(24).toString("hex")}`;
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    // Presented before the import: remembered as unknown by the cache, which the import must clear.
    expect(await api.authState(legacy, T)).toBe("unauthenticated");
    expect(await api.authState(unregistered, T), "an unregistered prefix is malformed").toBe("unauthenticated");
    const imported = ok(await api.call("ImportKeys", { customer_id: customerId, keys: [
      { name: "by-digest", sha256: sha(ours), scopes: ["api_keys:read"], metadata: { from: "legacy" } },
      { name: "legacy", plaintext: legacy },
    ] }, T), "import");
    expect(imported.keys.map((k: any) => k.name)).toEqual(["by-digest", "legacy"]);
    expect(imported.keys[1].prefix).toBe("acme_");
    expect(JSON.stringify(imported)).not.toContain(legacy.slice(5));
    expect(await api.authState(ours, T)).toBe("ok");
    expect(await api.authState(legacy, T)).toBe("ok");
    expect(await api.authState(`acme_${randomBytes(24).toString("hex")}`, T)).toBe("unauthenticated");
    const keyCall = await fetch(`${server.url}/v1/api-keys`, { headers: { authorization: `Bearer ${legacy}` } });
    expect(keyCall.status, "an imported key works on /v1 too").toBe(200);

    refused(await api.call("ImportKeys", { customer_id: customerId, keys: [{ name: "n", plaintext: unregistered }] }, T), "invalid_argument", "unregistered legacy prefix");
    refused(await api.call("ImportKeys", { customer_id: customerId, keys: [{ name: "n", sha256: "abc" }] }, T), "invalid_argument", "malformed digest");
    const fresh = sha(randomBytes(8).toString("hex"));
    refused(await api.call("ImportKeys", { customer_id: customerId, keys: [{ name: "new", sha256: fresh }, { name: "dup", sha256: sha(ours) }] }, T), "already_exists", "duplicate digest");
    const list = ok(await api.call("ListKeys", { customer_id: customerId, include_inactive: true }, T));
    expect(list.total_size, "nothing of the refused import was written").toBe(2);
    refused(await api.call("ImportKeys", { customer_id: customerId, keys: [{ name: "n", sha256: fresh }] }, ours), "permission_denied", "a customer key");
    await eventually(async () => {
      const events = ok(await api.call("ListAuditEvents", { customer_id: customerId, action: "api_key.imported" }, T)).data;
      expect(events).toHaveLength(2);
    });
  });
});
