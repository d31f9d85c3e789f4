import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { SecretRegistry } from "../helpers/fuzz-http.js";
import { rest, type RestResponse, uuid } from "../helpers/rest.js";
import { allRpcClients, type MethodName, type RpcClient, type RpcResult } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Issue 7, "Hostile input / Secrets": a suite of real traffic — keys issued over REST and every
 * RPC transport, used (Bearer, X-API-Key, Authenticate), updated, revoked, expired, rate-limited,
 * presented with typos, in the URL, after revocation — with every response body kept and the
 * server's whole log captured until it has exited. Then: no issued secret (nor its random part,
 * nor the internal token) is in any log line, any audit event, or any response other than the
 * issue response that returned it; every log line is JSON; every call that reached the service
 * is logged under the request id its response carried, and its audit event records that id.
 */

let server: RunningServer;
let clients: RpcClient[] = [];
const registry = new SecretRegistry();
const internal = () => ({ authorization: `Bearer ${server.internalToken}` });

interface Seen {
  label: string;
  text: string;
  /** The secret this response legitimately returns (its own issue response). */
  own?: string;
  /** Secrets the request itself carried in its URL (a response may echo the URL back). */
  carriedInUrl?: string[];
}
const seen: Seen[] = [];
/** Request ids of calls that reached the service (and so must be in the log). */
const loggedRequestIds = new Map<string, string>();
/** Issue responses' request ids by key id, to match against `api_key.issued` events. */
const issuedRequestId = new Map<string, string>();
/** Calls answered before the service (no route, key in URL): their ids may be absent from the log. */
const unloggedCandidates = new Map<string, string>();

const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

async function call(label: string, method: string, path: string, opts: Parameters<typeof rest>[3] & { reachesService?: boolean; carried?: string[] } = {}): Promise<RestResponse> {
  const res = await rest(server, method, path, opts);
  const text = res.body === undefined ? "" : JSON.stringify(res.body);
  const own = res.status === 201 ? (res.body?.secret as string | undefined) : undefined;
  if (own) {
    registry.add(own);
    issuedRequestId.set(res.body.id, res.headers.get("x-request-id") ?? "");
  }
  seen.push({ label: `${label}: ${method} ${path.replace(/zpk_\w+/g, "zpk_…")} -> ${res.status}`, text, own, carriedInUrl: opts.carried });
  const rid = res.headers.get("x-request-id");
  if (rid) (opts.reachesService === false ? unloggedCandidates : loggedRequestIds).set(rid, `${label} ${method} ${path.replace(/zpk_\w+/g, "zpk_…")}`);
  return res;
}

async function rpc<M extends MethodName>(client: RpcClient, label: string, method: M, req: Parameters<RpcClient["call"]>[1], headers: Record<string, string>): Promise<RpcResult<M>> {
  const requestId = `sec-${client.name.replace(/[^a-z]/gi, "")}-${label.replace(/[^a-z0-9]/gi, "")}-${Math.random().toString(36).slice(2, 8)}`;
  const r = (await client.call(method, req as never, { ...headers, "x-request-id": requestId })) as RpcResult<M>;
  const res = r.ok ? (r.res as { secret?: string; key?: { id: string } }) : null;
  const text = r.ok ? JSON.stringify(r.res, replacer) : `${r.code} ${r.message} ${JSON.stringify([...r.metadata])}`;
  const own = method === "issueKey" ? res?.secret : undefined;
  if (own) {
    registry.add(own);
    issuedRequestId.set(res!.key!.id, requestId);
  }
  seen.push({ label: `${client.name} ${label} ${method} -> ${r.ok ? "ok" : r.code}`, text, own });
  loggedRequestIds.set(requestId, `${client.name} ${label} ${method}`);
  return r;
}

function ok<M extends MethodName>(r: RpcResult<M>, what: string) {
  if (!r.ok) throw new Error(`${what}: code ${r.code} ${r.message}`);
  return r.res as any;
}

beforeAll(async () => {
  server = await startServer({ LOG_LEVEL: "trace", RATE_LIMIT_CAPACITY: "1000", RATE_LIMIT_REFILL_PER_SEC: "100" });
  clients = allRpcClients(server);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  if (server && server.process.exitCode === null) await server.stop();
});

describe("real traffic", () => {
  const c1 = uuid();
  const c2 = uuid();
  const inst = uuid();
  let root: any;
  const children: any[] = [];

  it("REST: issue, use (Bearer and X-API-Key), update, list, get", async () => {
    root = (await call("root", "POST", "/v1/api-keys", { key: server.internalToken, body: { name: "root", customer_id: c1, metadata: { team: "a" } } })).body;
    expect(root.secret).toMatch(/^zpk_live_/);
    await call("c2 root", "POST", "/v1/api-keys", { key: server.internalToken, body: { name: "root", customer_id: c2 } });
    for (const fields of [
      { name: "scoped", scopes: ["api_keys:read"] },
      { name: "bound", instance_id: inst },
      { name: "test-env", environment: "test", metadata: { purpose: "ci" } },
      { name: "to-revoke" },
      { name: "to-expire", expires_at: new Date(Date.now() + 1200).toISOString() },
    ]) {
      const r = await call("child", "POST", "/v1/api-keys", { key: root.secret, body: fields });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      children.push(r.body);
    }
    for (const k of [root, ...children.slice(0, 3)]) {
      expect((await call("list", "GET", "/v1/api-keys?include_inactive=true", { key: k.secret })).status).toBe(200);
      expect((await call("x-api-key list", "GET", "/v1/api-keys", { headers: { "x-api-key": k.secret } })).status).toBe(200);
    }
    for (const k of children) expect((await call("get", "GET", `/v1/api-keys/${k.id}`, { key: root.secret })).status).toBe(200);
    expect((await call("patch", "PATCH", `/v1/api-keys/${children[2].id}`, { key: root.secret, body: { name: "renamed", metadata: { x: "y" } } })).status).toBe(200);
    expect((await call("internal list", "GET", `/v1/api-keys?customer_id=${c1}&include_inactive=true`, { key: server.internalToken })).status).toBe(200);
  });

  it("REST: revoked, expired, mistyped, in the URL, rate-limited", async () => {
    const revoked = children[3];
    expect((await call("revoke", "DELETE", `/v1/api-keys/${revoked.id}`, { key: root.secret })).status).toBe(204);
    expect((await call("revoke again", "DELETE", `/v1/api-keys/${revoked.id}`, { key: root.secret })).status).toBe(204);
    const afterRevoke = await call("use revoked", "GET", "/v1/api-keys", { key: revoked.secret });
    expect(afterRevoke.status).toBe(401);
    await call("use revoked (x-api-key)", "POST", "/v1/api-keys", { headers: { "x-api-key": revoked.secret }, body: { name: "x" } });
    await sleep(1300);
    const expired = await call("use expired", "GET", "/v1/api-keys", { key: children[4].secret });
    expect(expired.status).toBe(401);
    // A typo of a real key (last char changed) and a truncated one.
    const typo = root.secret.slice(0, -1) + (root.secret.endsWith("A") ? "B" : "A");
    expect((await call("typo", "GET", "/v1/api-keys", { key: typo })).status).toBe(401);
    expect((await call("truncated", "GET", "/v1/api-keys", { key: root.secret.slice(0, 40) })).status).toBe(401);
    expect((await call("malformed header", "GET", "/v1/api-keys", { headers: { authorization: `Token ${root.secret}` } })).status).toBe(401);
    // In the URL: refused, never used, never logged.
    for (const q of [`api_key=${root.secret}`, `x=${root.secret}`, `token=${server.internalToken}`]) {
      const r = await call("key in url", "GET", `/v1/api-keys?${q}`, { key: root.secret, reachesService: false, carried: [root.secret] });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("key_in_url");
    }
    // In the path: not a route parameter anyone should use, but it must not be logged either.
    await call("key in path", "GET", `/v1/api-keys/${root.secret}`, { key: root.secret, carried: [root.secret] });
    await call("key in unknown path", "GET", `/v1/keys/${children[0].secret}`, { key: root.secret, reachesService: false, carried: [children[0].secret] });
    // Rate limited: a customer whose bucket holds 2 tokens.
    const c3 = uuid();
    const limited = (await call("limited", "POST", "/v1/api-keys", { key: server.internalToken, body: { name: "limited", customer_id: c3 } })).body;
    const set = await rpc(clients[0]!, "setlimit", "setRateLimit", { customerId: c3, capacity: 2, refillPerSecond: 0.01 }, internal());
    ok(set, "SetRateLimit");
    let saw429 = false;
    for (let i = 0; i < 4; i++) saw429 ||= (await call("burst", "GET", "/v1/api-keys", { key: limited.secret })).status === 429;
    expect(saw429).toBe(true);
  });

  it("RPC on every transport: issue, authenticate, list with the key, revoke, authenticate again", async () => {
    expect(clients.length).toBe(5);
    for (const client of clients) {
      const customer = uuid();
      const issued = ok(await rpc(client, "issue", "issueKey", { customerId: customer, name: `rpc ${client.name}`, scopes: ["api_keys:read"], metadata: { via: client.name } }, internal()), "IssueKey");
      const secret = issued.secret as string;
      const bound = ok(await rpc(client, "issue-bound", "issueKey", { customerId: customer, name: "bound", instanceId: inst }, internal()), "IssueKey bound");
      const auth = ok(await rpc(client, "auth", "authenticate", { key: secret, requiredScopes: ["api_keys:read"], charge: 1, clientIp: "10.0.0.1", userAgent: "secrets-test" }, internal()), "Authenticate");
      expect(auth.valid).toBe(true);
      const missing = ok(await rpc(client, "auth-scope", "authenticate", { key: secret, requiredScopes: ["api_keys:write"] }, internal()), "Authenticate scope");
      expect(missing.denialReason).toBe(DenialReason.MISSING_SCOPE);
      const wrong = ok(await rpc(client, "auth-instance", "authenticate", { key: bound.secret, instanceId: uuid() }, internal()), "Authenticate instance");
      expect(wrong.denialReason).toBe(DenialReason.WRONG_INSTANCE);
      ok(await rpc(client, "list", "listKeys", {}, { authorization: `Bearer ${secret}` }), "ListKeys with the key");
      ok(await rpc(client, "get", "getKey", { id: issued.key.id }, { authorization: `Bearer ${secret}` }), "GetKey with the key");
      ok(await rpc(client, "update", "updateKey", { id: bound.key.id, customerId: customer, name: "renamed" }, internal()), "UpdateKey");
      ok(await rpc(client, "revoke", "revokeKey", { id: issued.key.id, customerId: customer }, internal()), "RevokeKey");
      const after = ok(await rpc(client, "auth-revoked", "authenticate", { key: secret }, internal()), "Authenticate revoked");
      expect(after.denialReason).toBe(DenialReason.REVOKED);
      const typo = ok(await rpc(client, "auth-typo", "authenticate", { key: secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A") }, internal()), "Authenticate typo");
      expect(typo.denialReason).toBe(DenialReason.MALFORMED);
      const refused = await rpc(client, "customer-key-on-internal", "authenticate", { key: bound.secret }, { authorization: `Bearer ${bound.secret}` });
      expect(refused.ok).toBe(false);
      ok(await rpc(client, "audit", "listAuditEvents", { customerId: customer, pageSize: 100 }, internal()), "ListAuditEvents");
    }
  });

  it("audit trails (own key, internal, global) are read back", async () => {
    await sleep(600); // audit writes are batched
    for (const [who, key, query] of [
      ["c1 own", root.secret, ""],
      ["c1 internal", server.internalToken, `customer_id=${c1}&`],
      ["c2 internal", server.internalToken, `customer_id=${c2}&`],
      ["global", server.internalToken, ""],
    ] as const) {
      let token: string | null = null;
      do {
        const r = await call(`audit ${who}`, "GET", `/v1/audit-events?${query}page_size=100${token ? `&page_token=${token}` : ""}`, { key });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        token = r.body.next_page_token;
      } while (token);
    }
  });
});

describe("after the traffic, with the whole log of the stopped server", () => {
  let out = "";
  let lines: string[] = [];
  beforeAll(async () => {
    expect(await server.stop()).toBe(0);
    out = server.output();
    lines = out.split("\n").filter((l) => l.trim() !== "");
    console.log(`[secrets] ${registry.size} secrets issued; ${seen.length} responses kept; ${lines.length} log lines; ${loggedRequestIds.size} request ids expected in the log`);
  });

  it("issued at least one secret per way of issuing; the detector finds a planted one", () => {
    expect(registry.size).toBeGreaterThanOrEqual(8 + 2 * clients.length);
    const one = [...registry.secrets][0]!;
    expect(registry.find(`{"msg":"x","v":"${one}"}`)).toEqual([one]);
    expect(registry.find(`random part alone: ${one.slice(9, 52)}.`)).toEqual([one]);
    expect(registry.find(`prefix only: ${one.slice(0, 17)}`)).toEqual([]);
  });

  it("no issued secret, nor its random part, nor the internal token is in any log line", () => {
    const leaked = registry.find(out);
    const where = leaked.map((s) => lines.find((l) => l.includes(s.slice(9, 52))));
    expect(where, "log lines holding a secret").toEqual([]);
    expect(lines.filter((l) => l.includes(server.internalToken)), "log lines holding the internal token").toEqual([]);
    expect(lines.filter((l) => /Bearer\s+[^\s"[]/i.test(l)), "log lines holding an Authorization value").toEqual([]);
  });

  it("no response other than its own issue response holds a secret; none holds the internal token", () => {
    const problems: string[] = [];
    const echoes: string[] = [];
    for (const s of seen) {
      for (const secret of registry.find(s.text)) {
        if (secret === s.own) continue;
        if (s.carriedInUrl?.includes(secret)) echoes.push(s.label);
        else problems.push(`${s.label} holds the secret of ${secret.slice(0, 17)}…`);
      }
      if (s.text.includes(server.internalToken)) problems.push(`${s.label} holds the internal token`);
    }
    if (echoes.length) console.log(`[secrets] note: responses echoing a secret the request itself put in its URL: ${echoes.join("; ")}`);
    expect(problems).toEqual([]);
  });

  it("no audit event holds a secret or the internal token", () => {
    const audit = seen.filter((s) => s.label.startsWith("audit ") || / listAuditEvents /.test(s.label));
    expect(audit.length).toBeGreaterThan(5);
    const events = audit.flatMap((s) => (s.text.startsWith("{") ? (JSON.parse(s.text).data ?? []) : []));
    expect(events.length).toBeGreaterThan(20);
    const bad = events.filter((e: unknown) => registry.find(JSON.stringify(e)).length > 0 || JSON.stringify(e).includes(server.internalToken));
    expect(bad).toEqual([]);
  });

  it("every log line is JSON; every call that reached the service is logged under its request id", () => {
    const notJson = lines.filter((l) => {
      try {
        return typeof JSON.parse(l) !== "object";
      } catch {
        return true;
      }
    });
    expect(notJson, "log lines that are not JSON").toEqual([]);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const rpcLines = parsed.filter((l) => "rpc" in l);
    expect(rpcLines.length).toBeGreaterThan(50);
    expect(rpcLines.filter((l) => typeof l.requestId !== "string" || (l.requestId as string).length === 0), "request log lines without a request id").toEqual([]);
    const logged = new Set(parsed.map((l) => l.requestId).filter((x): x is string => typeof x === "string"));
    const missing = [...loggedRequestIds].filter(([id]) => !logged.has(id)).map(([id, what]) => `${what} (${id})`);
    expect(missing, "calls whose request id is in no log line").toEqual([]);
    const unlogged = [...unloggedCandidates].filter(([id]) => !logged.has(id)).map(([, what]) => what);
    if (unlogged.length) console.log(`[secrets] note: requests answered before the service (no route / key in URL) that left no log line: ${unlogged.join("; ")}`);
  });

  it("each api_key.issued event records the request id of the issue response", () => {
    const events = seen
      .filter((s) => s.label.startsWith("audit global"))
      .flatMap((s) => JSON.parse(s.text).data as Array<{ action: string; target: { key_id: string } | null; request_id: string | null }>);
    const issued = events.filter((e) => e.action === "api_key.issued");
    const checked = issued.filter((e) => e.target && issuedRequestId.has(e.target.key_id));
    expect(checked.length).toBeGreaterThanOrEqual(8);
    const wrong = checked.filter((e) => e.request_id !== issuedRequestId.get(e.target!.key_id));
    expect(wrong).toEqual([]);
  });
});
