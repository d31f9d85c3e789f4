import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail, eventually, expectError, issueWith, KEY_FIELDS, SECRET_PATTERN, wellFormedUnknownKey, withWrongChecksum } from "../helpers/rest-support.js";
import { allRpcClients, grpcJsClient, type RpcClient, type RpcResult, type MethodName } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";
import { keysCli as runKeysCli } from "../helpers/run-process.js";

/**
 * The behaviours a store carries (SPEC §2, §4, §5, §6, §8), written once and run against a real
 * server process on each store (test/e2e/stores.test.ts), the way test/storage/store-contract.ts
 * runs one suite on each Store: the key lifecycle over REST, every Authenticate denial over
 * native gRPC (GRPC_PORT), the rate limit, the `keys` CLI writing to the server's store, and a
 * restart on the same store. What only one store has is in its own file (mongo-only.test.ts).
 *
 * `storeEnv` is called once, in beforeAll, and names the store (DATA_DIR for SQLite, MONGODB_URI
 * and MONGODB_DB for MongoDB); the server and the CLI get it. The refill rate is tiny
 * (0.01 token/s) so "60 admitted, then refused" is exact even when 60 sequential decisions take a
 * second or more; capacity is the default 60.
 */
export function describeServiceOnStore(name: string, makeStoreEnv: () => Record<string, string>): void {
  describe(`service on ${name}`, () => {
    let storeEnv: Record<string, string>;
    let server: RunningServer;
    let grpc: RpcClient;
    const running: RunningServer[] = [];

    beforeAll(async () => {
      storeEnv = makeStoreEnv();
      server = await start();
      grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
    }, 60_000);
    afterAll(async () => {
      grpc?.close();
      for (const s of running) await s.stop();
    });

    async function start() {
      const s = await startServer({ ...storeEnv, RATE_LIMIT_REFILL_PER_SEC: "0.01" });
      running.push(s);
      return s;
    }

    const internal = () => ({ authorization: `Bearer ${server.internalToken}` });

    function ok<M extends MethodName>(r: RpcResult<M>, what = ""): Extract<RpcResult<M>, { ok: true }>["res"] {
      if (!r.ok) throw new Error(`${what} expected success, got code ${r.code}: ${r.message}`);
      return r.res;
    }

    async function authenticate(client: RpcClient, fields: Record<string, unknown>) {
      return ok(await client.call("authenticate", fields as never, internal()), "Authenticate");
    }

    it("key lifecycle over REST: issue (internal), list, get, patch, revoke, audit events written", async () => {
      const customerId = uuid();
      const root = await issueAsInternal(server, customerId, { name: "root" });
      expect(root.secret).toMatch(SECRET_PATTERN);
      expect(Object.keys(root).sort()).toEqual([...KEY_FIELDS, "secret"].sort());

      const child = await issueWith(server, root.secret, { name: "child", metadata: { team: "a" }, scopes: ["api_keys:read"] });

      const list = await rest(server, "GET", "/v1/api-keys", { key: root.secret });
      expect(list.status, JSON.stringify(list.body)).toBe(200);
      expect(list.body.data.map((k: any) => k.id)).toEqual([child.id, root.id]); // newest first
      expect(list.body.next_page_token).toBeNull();
      expect(list.headers.get("x-ratelimit-limit")).toBe("60");

      const got = await rest(server, "GET", `/v1/api-keys/${child.id}`, { key: child.secret });
      expect(got.status).toBe(200);
      expect(Object.keys(got.body).sort()).toEqual(KEY_FIELDS);
      expect(got.body).toMatchObject({ id: child.id, customer_id: customerId, name: "child", scopes: ["api_keys:read"], metadata: { team: "a" }, is_active: true });

      const patched = await rest(server, "PATCH", `/v1/api-keys/${child.id}`, { key: root.secret, body: { name: "child-renamed", metadata: { team: "b" } } });
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      expect(patched.body).toMatchObject({ name: "child-renamed", metadata: { team: "b" } });
      expect(Date.parse(patched.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(got.body.updated_at));
      // the list asked again after the change shows it (the embedded store reuses recent lists and their JSON)
      const relisted = await rest(server, "GET", "/v1/api-keys", { key: root.secret });
      expect(relisted.body.data.find((k: any) => k.id === child.id)).toMatchObject({ name: "child-renamed", metadata: { team: "b" } });

      // another customer's key id is a 404, not a 403
      const other = await issueAsInternal(server, uuid(), { name: "other" });
      expectError(await rest(server, "GET", `/v1/api-keys/${other.id}`, { key: root.secret }), 404, "not_found");

      expect((await rest(server, "DELETE", `/v1/api-keys/${child.id}`, { key: root.secret })).status).toBe(204);
      // a use of the revoked key, for the trail's auth.failed below (refusal at once: its own test below)
      expectError(await rest(server, "GET", "/v1/api-keys", { key: child.secret }), 401, ["key_revoked", "unauthenticated"]);
      // revoking again is a no-op success without a second event
      expect((await rest(server, "DELETE", `/v1/api-keys/${child.id}`, { key: root.secret })).status).toBe(204);

      const active = await rest(server, "GET", "/v1/api-keys", { key: root.secret });
      expect(active.body.data.map((k: any) => k.id)).toEqual([root.id]);
      const all = await rest(server, "GET", "/v1/api-keys?include_inactive=true", { key: root.secret });
      expect(all.body.data.map((k: any) => [k.id, k.is_active])).toEqual([[child.id, false], [root.id, true]]);
      expect(all.body.data[0].revoked_at).not.toBeNull();

      const trail = await eventually(async () => {
        const t = await auditTrail(server, customerId);
        return t.some((e) => e.action === "auth.failed") ? t : null;
      }, 2000);
      expect(trail, "auth.failed of the revoked key not in the trail within 2 s").not.toBeNull();
      const summary = trail!.map((e) => `${e.action}:${e.target?.key_id}`);
      expect(summary).toEqual(
        expect.arrayContaining([`api_key.issued:${root.id}`, `api_key.issued:${child.id}`, `api_key.updated:${child.id}`, `api_key.revoked:${child.id}`, `auth.failed:${child.id}`]),
      );
      expect(summary.filter((s) => s === `api_key.revoked:${child.id}`)).toHaveLength(1);
      expect(trail!.find((e) => e.action === "auth.failed")!.reason).toBe("revoked");
      expect(JSON.stringify(trail)).not.toContain(child.secret);
      expect(JSON.stringify(trail)).not.toContain(root.secret);
    });

    it("Authenticate over grpc-js on GRPC_PORT: a valid key's principal, and every denial reason", async () => {
      const customerId = uuid();
      const instance = uuid();
      const plain = await issueAsInternal(server, customerId, { name: "plain", metadata: { k: "v" } });
      const bound = await issueAsInternal(server, customerId, { name: "bound", instance_id: instance });
      const scoped = await issueAsInternal(server, customerId, { name: "scoped", scopes: ["billing:read"] });
      const revoked = await issueAsInternal(server, customerId, { name: "revoked" });
      const expiring = await issueAsInternal(server, customerId, { name: "expiring", expires_at: new Date(Date.now() + 1200).toISOString() });
      expect((await rest(server, "DELETE", `/v1/api-keys/${revoked.id}?customer_id=${customerId}`, { key: server.internalToken })).status).toBe(204);

      const valid = await authenticate(grpc, { key: plain.secret, requiredScopes: ["anything"], instanceId: uuid() });
      expect(valid.valid).toBe(true);
      expect(valid.denialReason).toBe(DenialReason.UNSPECIFIED);
      expect(valid.principal).toMatchObject({ keyId: plain.id, customerId, instanceId: "", prefix: plain.prefix, environment: "live", metadata: { k: "v" } });

      const cases: [string, Record<string, unknown>, DenialReason][] = [
        ["garbage", { key: "not-a-key" }, DenialReason.MALFORMED],
        ["wrong checksum", { key: withWrongChecksum(plain.secret) }, DenialReason.MALFORMED],
        ["never issued", { key: wellFormedUnknownKey() }, DenialReason.UNKNOWN],
        ["revoked", { key: revoked.secret }, DenialReason.REVOKED],
        ["bound to another instance", { key: bound.secret, instanceId: uuid() }, DenialReason.WRONG_INSTANCE],
        ["scope not held", { key: scoped.secret, requiredScopes: ["billing:write"] }, DenialReason.MISSING_SCOPE],
      ];
      for (const [what, req, reason] of cases) {
        const res = await authenticate(grpc, req);
        expect(res.valid, what).toBe(false);
        expect(DenialReason[res.denialReason], what).toBe(DenialReason[reason]);
        expect(res.principal, what).toBeUndefined();
      }
      expect((await authenticate(grpc, { key: bound.secret, instanceId: instance })).valid).toBe(true);
      expect((await authenticate(grpc, { key: scoped.secret, requiredScopes: ["billing:read"] })).valid).toBe(true);

      // expiry: valid until expires_at, EXPIRED from then on
      expect((await authenticate(grpc, { key: expiring.secret })).valid).toBe(true);
      await sleep(Math.max(0, Date.parse(expiring.expires_at as string) - Date.now()) + 50);
      const expired = await authenticate(grpc, { key: expiring.secret });
      expect(DenialReason[expired.denialReason]).toBe("EXPIRED");

      // RATE_LIMITED: drain the customer's bucket, then a charged Authenticate is denied and takes nothing
      for (let i = 0; i < 60; i++) ok(await grpc.call("chargeRateLimit", { customerId }, internal()));
      const limited = await authenticate(grpc, { key: plain.secret, charge: 1 });
      expect(limited.valid).toBe(false);
      expect(DenialReason[limited.denialReason]).toBe("RATE_LIMITED");
      expect(limited.rateLimit?.remaining).toBe(0);
      expect(limited.rateLimit?.retryAfterSeconds).toBeGreaterThan(0);
      // charge 0 (the default) does not touch the bucket: still valid
      expect((await authenticate(grpc, { key: plain.secret })).valid).toBe(true);

      // an empty key is a bad request, not a denial
      const empty = await grpc.call("authenticate", { key: "" }, internal());
      expect(empty.ok ? "ok" : empty.code).toBe(3);

      const trail = await eventually(async () => {
        const t = await auditTrail(server, customerId, "action=auth.failed");
        return t.length >= 4 ? t : null;
      }, 2000);
      expect(trail?.map((e) => e.reason).sort()).toEqual(expect.arrayContaining(["expired", "missing_scope", "revoked", "wrong_instance"]));
    });

    it("ChargeRateLimit: a new customer gets 60 (the default capacity), then is refused with a retry-after; the bucket is the customer's on REST too", async () => {
      const customerId = uuid();
      const remaining: number[] = [];
      for (let i = 0; i < 60; i++) {
        const r = ok(await grpc.call("chargeRateLimit", { customerId }, internal()), `charge ${i + 1}`);
        expect(r.allowed, `charge ${i + 1}`).toBe(true);
        expect(r.limit).toBe(60);
        remaining.push(r.remaining);
      }
      expect(remaining[0]).toBe(59);
      expect(remaining[59]).toBe(0);
      expect(remaining).toEqual([...remaining].sort((a, b) => b - a)); // never goes up
      for (let i = 0; i < 5; i++) {
        const refused = ok(await grpc.call("chargeRateLimit", { customerId }, internal()));
        expect(refused.allowed).toBe(false);
        expect(refused.remaining).toBe(0);
        expect(refused.retryAfterSeconds).toBeGreaterThan(0);
      }
      // a customer key of that customer is throttled on REST too (the bucket is per customer)
      const k = await issueAsInternal(server, customerId, { name: "throttled" });
      const res = await rest(server, "GET", "/v1/api-keys", { key: k.secret });
      expectError(res, 429, "rate_limited");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    });

    it("revocation takes effect at once (SPEC §5): on REST (Bearer and X-API-Key) and every RPC transport, the very next call with the key is refused and Authenticate answers REVOKED", async () => {
      const customerId = uuid();
      const clients = allRpcClients(server);
      try {
        // REST: revoked by another key of the customer; refused on the next request, however the key is sent
        const root = await issueAsInternal(server, customerId, { name: "root" });
        for (const how of ["bearer", "x-api-key"] as const) {
          const k = await issueWith(server, root.secret, { name: `rest-${how}` });
          const send = () => rest(server, "GET", "/v1/api-keys", how === "bearer" ? { key: k.secret } : { headers: { "x-api-key": k.secret } });
          expect((await send()).status, how).toBe(200); // warm in the server's key cache
          expect((await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret })).status).toBe(204);
          expectError(await send(), 401, ["key_revoked", "unauthenticated"]);
        }
        // every RPC transport: revoked with RevokeKey on that transport, refused on its next call
        for (const c of clients) {
          const issued = ok(await c.call("issueKey", { customerId, name: c.name }, internal()), `${c.name} IssueKey`);
          const bearer = { authorization: `Bearer ${issued.secret}` };
          ok(await c.call("listKeys", {}, bearer), `${c.name} ListKeys before`);
          expect(ok(await c.call("authenticate", { key: issued.secret }, internal())).valid, c.name).toBe(true);
          ok(await c.call("revokeKey", { customerId, id: issued.key!.id }, internal()), `${c.name} RevokeKey`);
          const after = await c.call("listKeys", {}, bearer);
          expect(after.ok ? "ok" : after.code, `${c.name}: ListKeys with the revoked key`).toBe(16); // UNAUTHENTICATED
          const denied = ok(await c.call("authenticate", { key: issued.secret }, internal()), `${c.name} Authenticate`);
          expect(DenialReason[denied.denialReason], c.name).toBe("REVOKED");
        }
      } finally {
        for (const c of clients) c.close();
      }
    });

    it("`npm run keys -- issue` on the server's store: the key works on the running server at once", async () => {
      const customerId = uuid();
      const r = await runKeysCli(["issue", "--customer", customerId, "--name", "from-cli", "--scopes", "api_keys:read"], storeEnv);
      expect(r.code, r.stderr).toBe(0);
      const key = JSON.parse(r.stdout);
      expect(key.secret).toMatch(SECRET_PATTERN);
      expect(key.customer_id).toBe(customerId);

      const list = await rest(server, "GET", "/v1/api-keys", { key: key.secret });
      expect(list.status, JSON.stringify(list.body)).toBe(200);
      expect(list.body.data.map((k: any) => k.id)).toEqual([key.id]);
      expect((await authenticate(grpc, { key: key.secret, requiredScopes: ["api_keys:read"] })).valid).toBe(true);
    }, 60_000);

    it("a restart of the server process on the same store keeps keys, revocations, audit trail, usage counters and buckets", async () => {
      const customerId = uuid();
      const root = await issueAsInternal(server, customerId, { name: "root" });
      const kept = await issueWith(server, root.secret, { name: "kept", metadata: { a: "b" } });
      const gone = await issueWith(server, root.secret, { name: "gone" });
      expect((await rest(server, "DELETE", `/v1/api-keys/${gone.id}`, { key: root.secret })).status).toBe(204);
      for (let i = 0; i < 3; i++) expect((await authenticate(grpc, { key: kept.secret })).valid).toBe(true);
      // a drained bucket must stay drained across the restart (refill is 0.01/s here)
      const drained = uuid();
      for (let i = 0; i < 60; i++) ok(await grpc.call("chargeRateLimit", { customerId: drained }, internal()));

      const asInternal = (s: RunningServer, path: string) =>
        rest(s, "GET", `${path}${path.includes("?") ? "&" : "?"}customer_id=${customerId}`, { key: s.internalToken });
      const before = (await asInternal(server, "/v1/api-keys?include_inactive=true")).body.data;
      const trailBefore = await auditTrail(server, customerId);

      grpc.close();
      const first = server;
      expect(await first.stop(), first.output().slice(-2000)).toBe(0);
      server = await start();
      grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);

      const after = (await asInternal(server, "/v1/api-keys?include_inactive=true")).body.data;
      expect(after.map((k: any) => k.id)).toEqual(before.map((k: any) => k.id));
      const keptAfter = after.find((k: any) => k.id === kept.id);
      // usage is written behind and flushed on SIGTERM: all 3 Authenticate calls (+ REST calls by root do not count for kept)
      expect(keptAfter.total_requests).toBe(3);
      expect(keptAfter.last_used_at).not.toBeNull();
      expect(keptAfter.metadata).toEqual({ a: "b" });
      expect(after.find((k: any) => k.id === gone.id).revoked_at).not.toBeNull();

      const trailAfter = await auditTrail(server, customerId);
      expect(trailAfter.map((e) => e.id)).toEqual(expect.arrayContaining(trailBefore.map((e) => e.id)));

      expect((await authenticate(grpc, { key: kept.secret })).valid).toBe(true);
      expect(DenialReason[(await authenticate(grpc, { key: gone.secret })).denialReason]).toBe("REVOKED");
      const charge = ok(await grpc.call("chargeRateLimit", { customerId: drained }, internal()));
      expect(charge.allowed, "the drained bucket was full again after the restart").toBe(false);
      // and it keeps working
      const fresh = await issueWith(server, root.secret, { name: "fresh" });
      expect((await rest(server, "GET", "/v1/api-keys", { key: fresh.secret })).status).toBe(200);
    }, 60_000);
  });
}
