import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { freshDbName, mongoUri } from "../helpers/mongo.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail } from "../helpers/rest-support.js";
import { allRpcClients, grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Issue 12, the domain items, as an attacker tries them: black-box, the real server on both
 * stores (SQLite; the suite's FerretDB), every transport (REST and each RPC client of
 * rpc-clients.ts, on PORT and GRPC_PORT).
 *
 * Privilege: a restricted key cannot revive an expired or revoked key, nor update or revoke a
 * key more powerful than itself (SPEC §2: the issuance rule applies to every write); a no-op
 * PATCH writes no audit event.
 *
 * Audit: an instance-bound key with audit:read reads only events about keys of its instance
 * (and its own failures), page by page, complete.
 *
 * Floods: a revoked key's failures add at most one row per (key, reason, source) per interval
 * (AUDIT_FAILURE_INTERVAL_MS, at most 1 s) with a count, readable within 1 s; failure events
 * past AUDIT_FAILURE_RETENTION_DAYS are purged in bounded batches, successes kept.
 */

type Outcome = { ok: true; key: any } | { ok: false; code: string; message: string };

const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));

const BY_GRPC: Record<number, string> = { 3: "invalid_argument", 9: "failed_precondition", 5: "not_found", 7: "permission_denied", 16: "unauthenticated" };

/** One client shape for REST and the RPC clients: update, revoke; errors as our code names. */
interface Transport {
  name: string;
  update(secret: string, id: string, fields: { name?: string; expiresAt?: number | null }): Promise<Outcome>;
  revoke(secret: string, id: string): Promise<Outcome>;
}

function restTransport(server: RunningServer): Transport {
  const outcome = (res: { status: number; body: any }, okStatus: number): Outcome =>
    res.status === okStatus ? { ok: true, key: res.body } : { ok: false, code: res.body?.error?.code ?? String(res.status), message: res.body?.error?.message ?? "" };
  return {
    name: "rest",
    async update(secret, id, f) {
      const body: Record<string, unknown> = {};
      if (f.name !== undefined) body.name = f.name;
      if (f.expiresAt !== undefined) body.expires_at = f.expiresAt === null ? null : new Date(f.expiresAt).toISOString();
      return outcome(await rest(server, "PATCH", `/v1/api-keys/${id}`, { key: secret, body }), 200);
    },
    async revoke(secret, id) {
      return outcome(await rest(server, "DELETE", `/v1/api-keys/${id}`, { key: secret }), 204);
    },
  };
}

function rpcTransport(client: RpcClient): Transport {
  const auth = (secret: string) => ({ authorization: `Bearer ${secret}` });
  const outcome = (r: Awaited<ReturnType<RpcClient["call"]>>): Outcome =>
    r.ok ? { ok: true, key: (r.res as any).key } : { ok: false, code: BY_GRPC[r.code] ?? `grpc ${r.code}`, message: r.message };
  return {
    name: client.name,
    async update(secret, id, f) {
      const paths = [...(f.name !== undefined ? ["name"] : []), ...(f.expiresAt !== undefined ? ["expires_at"] : [])];
      const req = {
        id,
        name: f.name ?? "",
        ...(typeof f.expiresAt === "number" && { expiresAt: timestampFromMs(f.expiresAt) }),
        updateMask: { paths },
      };
      return outcome(await client.call("updateKey", req, auth(secret)));
    },
    async revoke(secret, id) {
      return outcome(await client.call("revokeKey", { id }, auth(secret)));
    },
  };
}

/** The default aggregation interval of known-key failures, set explicitly so the bound below is exact. */
const FAILURE_INTERVAL_MS = 500;

const stores = [
  { store: "sqlite", env: () => ({}) },
  { store: "ferretdb", env: () => ({ MONGODB_URI: mongoUri(), MONGODB_DB: freshDbName("zpk_domsec") }) },
];

describe.each(stores)("issue 12 domain items on $store", ({ env }) => {
  let server: RunningServer;
  let internal: RpcClient;
  let clients: RpcClient[] = [];
  let transports: Transport[] = [];

  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_CAPACITY: "100000", RATE_LIMIT_REFILL_PER_SEC: "100000", AUDIT_FAILURE_INTERVAL_MS: String(FAILURE_INTERVAL_MS), ...env() });
    internal = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
    clients = allRpcClients(server);
    transports = [restTransport(server), ...clients.map(rpcTransport)];
  }, 60_000);
  afterAll(async () => {
    internal?.close();
    for (const c of clients) c.close();
    await server?.stop();
  });

  /** What Authenticate says about a secret now. */
  async function authenticate(secret: string) {
    const r = await internal.call("authenticate", { key: secret }, { authorization: `Bearer ${server.internalToken}` });
    if (!r.ok) throw new Error(`Authenticate: ${r.code} ${r.message}`);
    return r.res;
  }

  describe("privilege: no path back to an inactive key, no acting above your own rights", () => {
    /** Per transport: one customer with an admin that expired, one revoked, a live admin, a write-only key. */
    const cases = new Map<string, { customerId: string; expired: any; revoked: any; admin: any; writer: any; weak: any }>();

    beforeAll(async () => {
      const expiresAt = Date.now() + 2500;
      for (const t of transports) {
        const customerId = uuid();
        const expired = await issueAsInternal(server, customerId, { name: "old admin", expires_at: new Date(expiresAt).toISOString() });
        const revoked = await issueAsInternal(server, customerId, { name: "revoked admin" });
        expect((await rest(server, "DELETE", `/v1/api-keys/${revoked.id}?customer_id=${customerId}`, { key: server.internalToken })).status).toBe(204);
        const admin = await issueAsInternal(server, customerId, { name: "admin" });
        const writer = await issueAsInternal(server, customerId, { name: "writer", scopes: ["api_keys:write"] });
        const weak = await issueAsInternal(server, customerId, { name: "weak", scopes: ["api_keys:write"] });
        cases.set(t.name, { customerId, expired, revoked, admin, writer, weak });
      }
      await sleep(Math.max(0, expiresAt - Date.now()) + 200);
      for (const c of cases.values()) expect((await authenticate(c.expired.secret)).denialReason).toBe(DenialReason.EXPIRED);
    }, 60_000);

    it("a write-only key cannot revive an expired unrestricted key (PATCH expires_at null or later), which stays 401", async () => {
      for (const t of transports) {
        const c = cases.get(t.name)!;
        for (const expiresAt of [null, Date.now() + 86_400_000]) {
          const r = await t.update(c.writer.secret, c.expired.id, { expiresAt });
          expect(r.ok, `${t.name}: write-only key PATCHed expires_at=${expiresAt} of an expired admin: ${show(r)}`).toBe(false);
          if (!r.ok) expect(r.code, t.name).toBe("permission_denied");
        }
        expect((await authenticate(c.expired.secret)).denialReason, t.name).toBe(DenialReason.EXPIRED);
        const res = await rest(server, "GET", "/v1/api-keys", { key: c.expired.secret });
        expect(res.status, `${t.name}: the expired admin authenticates again`).toBe(401);
      }
    });

    it("not even an unrestricted key can change the expiry of an expired or revoked key (400 failed_precondition naming the rule)", async () => {
      for (const t of transports) {
        const c = cases.get(t.name)!;
        for (const [target, state] of [[c.expired, "expired"], [c.revoked, "revoked"]] as const) {
          for (const expiresAt of [null, Date.now() + 86_400_000]) {
            const r = await t.update(c.admin.secret, target.id, { expiresAt });
            expect(r.ok, `${t.name}: admin PATCHed expires_at=${expiresAt} of a ${state} key: ${show(r)}`).toBe(false);
            if (!r.ok) {
              expect(r.code, t.name).toBe("failed_precondition");
              expect(r.message, t.name).toContain(state);
              expect(r.message, t.name).toContain("expires_at");
            }
          }
          expect((await authenticate(target.secret)).denialReason, `${t.name} ${state}`).toBe(state === "expired" ? DenialReason.EXPIRED : DenialReason.REVOKED);
        }
        // Renaming an inactive key (a note for the record) is still allowed; it stays inactive.
        const renamed = await t.update(c.admin.secret, c.expired.id, { name: "old admin (expired)" });
        expect(renamed.ok, `${t.name}: ${show(renamed)}`).toBe(true);
        expect((await authenticate(c.expired.secret)).denialReason, t.name).toBe(DenialReason.EXPIRED);
      }
    });

    it("a write-only key cannot update or revoke an unrestricted key (403 naming the reason); the admin keeps working", async () => {
      for (const t of transports) {
        const c = cases.get(t.name)!;
        const renamed = await t.update(c.writer.secret, c.admin.id, { name: "pwned" });
        expect(renamed.ok, `${t.name}: ${show(renamed)}`).toBe(false);
        if (!renamed.ok) {
          expect(renamed.code, t.name).toBe("permission_denied");
          expect(renamed.message, t.name).toMatch(/unrestricted/);
        }
        const revoked = await t.revoke(c.writer.secret, c.admin.id);
        expect(revoked.ok, `${t.name}: write-only key revoked the admin: ${show(revoked)}`).toBe(false);
        if (!revoked.ok) expect(revoked.code, t.name).toBe("permission_denied");
        expect((await authenticate(c.admin.secret)).valid, t.name).toBe(true);
        const got = await rest(server, "GET", `/v1/api-keys/${c.admin.id}`, { key: c.admin.secret });
        expect(got.body.name, t.name).toBe("admin");
      }
    });

    it("a key may still update and revoke keys whose scopes it holds", async () => {
      for (const t of transports) {
        const c = cases.get(t.name)!;
        const renamed = await t.update(c.writer.secret, c.weak.id, { name: "weak renamed" });
        expect(renamed.ok, `${t.name}: ${show(renamed)}`).toBe(true);
        const revoked = await t.revoke(c.writer.secret, c.weak.id);
        expect(revoked.ok, `${t.name}: ${show(revoked)}`).toBe(true);
        expect((await authenticate(c.weak.secret)).denialReason, t.name).toBe(DenialReason.REVOKED);
      }
    });

    it("a no-op PATCH (same name, same expiry, nothing) answers the key and writes no audit event", async () => {
      for (const t of transports) {
        const c = cases.get(t.name)!;
        const updates = async () => (await auditTrail(server, c.customerId, `action=api_key.updated&target_id=${c.admin.id}`)).length;
        const before = await updates();
        for (const fields of [{ name: "admin" }, { expiresAt: null }, {}, { name: "admin", expiresAt: null }]) {
          const r = await t.update(c.admin.secret, c.admin.id, fields);
          expect(r.ok, `${t.name} ${JSON.stringify(fields)}: ${show(r)}`).toBe(true);
          if (r.ok) expect(r.key.name, t.name).toBe("admin");
        }
        expect(await updates(), `${t.name}: no-op PATCHes wrote audit events`).toBe(before);
        expect((await t.update(c.admin.secret, c.admin.id, { name: "admin 2" })).ok, t.name).toBe(true);
        expect(await updates(), t.name).toBe(before + 1);
      }
    });
  });

  describe("audit: an instance-bound reader sees only its instance's events", () => {
    it("every page holds only events whose target or actor is a key of its instance, and all of them", async () => {
      const customerId = uuid();
      const [i1, i2] = [uuid(), uuid()];
      const admin = await issueAsInternal(server, customerId, { name: "admin" });
      const reader = await issueAsInternal(server, customerId, { name: "i1 reader", instance_id: i1, scopes: ["audit:read", "api_keys:write"] });
      const mine: string[] = [reader.id];
      // Busy neighbours: many events about I2 and unbound keys, a few about I1.
      for (let i = 0; i < 12; i++) {
        const instance = i % 4 === 0 ? i1 : i % 4 === 1 ? null : i2;
        const k = await rest(server, "POST", "/v1/api-keys", { key: admin.secret, body: { name: `k${i}`, ...(instance && { instance_id: instance }) } });
        expect(k.status).toBe(201);
        if (instance === i1) mine.push(k.body.id);
        if (i % 2 === 0) expect((await rest(server, "DELETE", `/v1/api-keys/${k.body.id}`, { key: admin.secret })).status).toBe(204);
        if (i % 2 === 0) expect((await rest(server, "GET", "/v1/api-keys", { key: k.body.secret })).status).toBe(401); // auth.failed revoked
      }
      // The reader's own failure (missing scope) and an event it causes itself.
      expect((await rest(server, "GET", "/v1/api-keys", { key: reader.secret })).status).toBe(403);
      const own = await rest(server, "POST", "/v1/api-keys", { key: reader.secret, body: { name: "by reader", instance_id: i1, scopes: ["api_keys:write"] } });
      expect(own.status).toBe(201);
      mine.push(own.body.id);

      const all = await eventuallyTrail(customerId, (es) => es.filter((e) => e.action === "auth.failed").length >= 6);
      const expected = all
        .filter((e) => mine.includes(e.target?.key_id) || mine.includes(e.actor?.key_id))
        .map((e) => e.id);
      expect(expected.length).toBeGreaterThan(5);
      expect(all.length).toBeGreaterThan(expected.length + 10);

      for (const t of ["rest", ...clients.map((c) => c.name)]) {
        const seen = await readAll(t, reader.secret, 2);
        expect(seen.filter((id) => !expected.includes(id)), `${t}: events outside instance I1 (of ${all.length})`).toEqual([]);
        expect(seen, `${t}: every I1 event, newest first, in pages of 2`).toEqual(expected);
      }
    });

    /** The customer's whole trail (internal credential) once `done` holds for it. */
    async function eventuallyTrail(customerId: string, done: (es: any[]) => boolean) {
      const deadline = Date.now() + 5000;
      for (;;) {
        const es = await auditTrail(server, customerId);
        if (done(es) || Date.now() > deadline) return es;
        await sleep(100);
      }
    }

    /** Event ids a key reads over one transport, following next_page_token with `pageSize`. */
    async function readAll(transport: string, secret: string, pageSize: number): Promise<string[]> {
      const out: string[] = [];
      let token = "";
      for (let page = 0; page < 100; page++) {
        if (transport === "rest") {
          const q = new URLSearchParams({ page_size: String(pageSize), ...(token && { page_token: token }) });
          const res = await rest(server, "GET", `/v1/audit-events?${q}`, { key: secret });
          expect(res.status, show(res.body)).toBe(200);
          expect(res.body.data.length <= pageSize).toBe(true);
          out.push(...res.body.data.map((e: any) => e.id));
          token = res.body.next_page_token ?? "";
        } else {
          const client = clients.find((c) => c.name === transport)!;
          const r = await client.call("listAuditEvents", { pageSize, pageToken: token }, { authorization: `Bearer ${secret}` });
          if (!r.ok) throw new Error(`${transport} ListAuditEvents: ${r.code} ${r.message}`);
          out.push(...(r.res as any).data.map((e: any) => e.id));
          token = (r.res as any).nextPageToken ?? "";
        }
        if (!token) break;
      }
      return out;
    }
  });

  describe("floods: a revoked key cannot grow its customer's trail per request", () => {
    it("N requests with a revoked key add at most one row per (key, reason, source) per interval, counting all N", async () => {
      const customerId = uuid();
      const k = await issueAsInternal(server, customerId, { name: "flooded" });
      expect((await rest(server, "DELETE", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: server.internalToken })).status).toBe(204);
      const N = 400;
      const sources = ["203.0.113.7", "198.51.100.9"];
      const started = Date.now();
      let sent = 0;
      const worker = async () => {
        while (sent < N) {
          const i = sent++;
          if (i % 2 === 0) {
            const res = await rest(server, "GET", "/v1/api-keys", { key: k.secret });
            expect(res.status).toBe(401);
          } else {
            const r = await authenticateFrom(k.secret, sources[(i >> 1) % 2]!);
            expect(r.denialReason).toBe(DenialReason.REVOKED);
          }
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const elapsed = Date.now() - started;
      const rows = await eventuallyRows(customerId, k.id, (es) => es.reduce((n, e) => n + e.count, 0) >= N);
      const bySource = new Map<string, { rows: number; count: number }>();
      for (const e of rows) {
        expect(e.reason).toBe("revoked");
        const s = bySource.get(e.ip) ?? { rows: 0, count: 0 };
        s.rows++;
        s.count += e.count;
        bySource.set(e.ip, s);
      }
      const intervals = Math.floor(elapsed / FAILURE_INTERVAL_MS) + 2;
      console.log(`[hostile-domain] flood of ${N} failures in ${elapsed} ms -> ${rows.length} rows: ${show([...bySource])}; bound ${intervals} rows per source`);
      expect([...bySource.keys()].sort()).toEqual(["127.0.0.1", ...sources].sort());
      expect(bySource.get("127.0.0.1")!.count).toBe(N / 2);
      for (const s of sources) expect(bySource.get(s)!.count).toBe(N / 4);
      for (const [ip, s] of bySource) expect(s.rows, `rows from ${ip} in ${elapsed} ms`).toBeLessThanOrEqual(intervals);
    }, 120_000);

    it("a revoked key's failure is readable in its customer's trail within 1 s", async () => {
      const customerId = uuid();
      const k = await issueAsInternal(server, customerId, { name: "revoked once" });
      expect((await rest(server, "DELETE", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: server.internalToken })).status).toBe(204);
      const at = Date.now();
      expect((await rest(server, "GET", "/v1/api-keys", { key: k.secret })).status).toBe(401);
      const rows = await eventuallyRows(customerId, k.id, (es) => es.length > 0, 1000);
      expect(rows.length, `no auth.failed event within ${Date.now() - at} ms`).toBe(1);
      expect(rows[0]).toMatchObject({ reason: "revoked", count: 1, target: { key_id: k.id } });
    });

    async function authenticateFrom(secret: string, clientIp: string) {
      const r = await internal.call("authenticate", { key: secret, clientIp }, { authorization: `Bearer ${server.internalToken}` });
      if (!r.ok) throw new Error(`Authenticate: ${r.code} ${r.message}`);
      return r.res;
    }

    /** The key's auth.failed rows once `done` holds for them (or `timeoutMs` passed). */
    async function eventuallyRows(customerId: string, keyId: string, done: (es: any[]) => boolean, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const es = await auditTrail(server, customerId, `action=auth.failed&target_id=${keyId}`);
        if (done(es) || Date.now() > deadline) return es;
        await sleep(50);
      }
    }
  });

  describe("small bounds: failure retention, active keys per customer", () => {
    let short: RunningServer;
    beforeAll(async () => {
      short = await startServer({
        AUDIT_FAILURE_RETENTION_DAYS: String(2 / 86_400), // 2 s
        AUDIT_PURGE_INTERVAL_MS: "200",
        AUDIT_PURGE_BATCH: "5",
        MAX_ACTIVE_KEYS_PER_CUSTOMER: "5",
        ...env(),
      });
    }, 60_000);
    afterAll(async () => {
      await short?.stop();
    });

    it("failure events past the retention are purged, at most AUDIT_PURGE_BATCH per run; successes stay", async () => {
      const customerId = uuid();
      const k = await issueAsInternal(short, customerId, { name: "purged" });
      expect((await rest(short, "DELETE", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: short.internalToken })).status).toBe(204);
      const client = grpcJsClient(`127.0.0.1:${short.grpcPort}`);
      try {
        // 12 sources: 12 failure rows, more than two purge batches.
        for (let i = 0; i < 12; i++) {
          const r = await client.call("authenticate", { key: k.secret, clientIp: `192.0.2.${i}` }, { authorization: `Bearer ${short.internalToken}` });
          expect(r.ok && (r.res as any).denialReason).toBe(DenialReason.REVOKED);
        }
      } finally {
        client.close();
      }
      const failures = async () => (await auditTrail(short, customerId, "action=auth.failed")).length;
      const until = async (want: (n: number) => boolean, ms: number) => {
        const deadline = Date.now() + ms;
        let n = await failures();
        while (!want(n) && Date.now() < deadline) {
          await sleep(100);
          n = await failures();
        }
        return n;
      };
      expect(await until((n) => n === 12, 3000)).toBe(12);
      expect(await until((n) => n === 0, 15_000)).toBe(0);
      const kept = (await auditTrail(short, customerId)).map((e) => e.action).sort();
      expect(kept).toEqual(["api_key.issued", "api_key.revoked"]);
      const runs = short.output().split("\n").filter((l) => l.includes("purged failure audit events")).map((l) => JSON.parse(l).deleted as number);
      expect(runs.length).toBeGreaterThanOrEqual(3);
      for (const d of runs) expect(d).toBeLessThanOrEqual(5);
    }, 60_000);

    it("a customer holds at most MAX_ACTIVE_KEYS_PER_CUSTOMER active keys: the next issue is 400 failed_precondition saying so; revoked and expired keys do not count", async () => {
      const customerId = uuid();
      const admin = await issueAsInternal(short, customerId, { name: "admin" });
      await issueAsInternal(short, customerId, { name: "short-lived", expires_at: new Date(Date.now() + 1500).toISOString() });
      const more = [];
      for (let i = 0; i < 3; i++) more.push(await issueAsInternal(short, customerId, { name: `k${i}` }));
      // 5 active: every issuer is refused, on REST and RPC, with the same clear error.
      const byKey = await rest(short, "POST", "/v1/api-keys", { key: admin.secret, body: { name: "sixth" } });
      expect(byKey.status, show(byKey.body)).toBe(400);
      expect(byKey.body.error.code).toBe("failed_precondition");
      expect(byKey.body.error.message).toContain("MAX_ACTIVE_KEYS_PER_CUSTOMER");
      expect(byKey.body.error.message).toContain("5");
      const byInternal = await rest(short, "POST", "/v1/api-keys", { key: short.internalToken, body: { name: "sixth", customer_id: customerId } });
      expect(byInternal.status).toBe(400);
      const client = grpcJsClient(`127.0.0.1:${short.grpcPort}`);
      try {
        const r = await client.call("issueKey", { name: "sixth" }, { authorization: `Bearer ${admin.secret}` });
        expect(r.ok ? "issued" : r.code).toBe(9); // FAILED_PRECONDITION
      } finally {
        client.close();
      }
      // Another customer is not affected.
      await issueAsInternal(short, uuid(), { name: "elsewhere" });
      // Revoking one makes room for one.
      expect((await rest(short, "DELETE", `/v1/api-keys/${more[0]!.id}`, { key: admin.secret })).status).toBe(204);
      expect((await rest(short, "POST", "/v1/api-keys", { key: admin.secret, body: { name: "replacement" } })).status).toBe(201);
      expect((await rest(short, "POST", "/v1/api-keys", { key: admin.secret, body: { name: "one too many" } })).status).toBe(400);
      // Once the short-lived key has expired it no longer counts.
      await sleep(1700);
      expect((await rest(short, "POST", "/v1/api-keys", { key: admin.secret, body: { name: "after expiry" } })).status).toBe(201);
      const list = await rest(short, "GET", "/v1/api-keys?page_size=100", { key: admin.secret });
      expect(list.body.data).toHaveLength(5);
    });
  });
});
