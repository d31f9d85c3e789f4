import { readFileSync } from "node:fs";
import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { PARSER_REFUSAL_MESSAGES } from "../../src/transport/http/client-error.js";
import {
  connectRaw,
  grpcRaw,
  type Ref,
  restSpec,
  type RestSpec,
  rawRequest,
  rpcCall,
} from "../helpers/fuzz-arbitraries.js";
import {
  errorShapeProblems,
  FuzzHttpClient,
  KEY_IN_URL_MESSAGE_START,
  keyInQuery,
  logLinesFor,
  rawBody,
  rpcKeyInUrlProblems,
  rawExchange,
  rssMiB,
  SECRET_LIKE,
  SecretRegistry,
} from "../helpers/fuzz-http.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { allRpcClients, type RpcClient } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Issue 7, "Hostile input / Fuzzing": fast-check throws generated requests at ONE real server
 * process — the REST routes (random methods, paths under /v1, query strings, headers, bodies:
 * wrong types, huge and deeply nested values, lone surrogates, NUL, RTL overrides, duplicate keys,
 * 1e309, invalid UTF-8), raw HTTP/1.1 that node:http would refuse to build, Connect calls with
 * hand-made bodies, and every RPC over every transport (Connect, gRPC, gRPC-Web on PORT, grpc-js
 * on PORT and GRPC_PORT) with random field values.
 *
 * Per request: no 5xx; every REST error is `{"error":{"code","message"},"request_id"}` with a
 * SPEC §3 code (or method_not_allowed) and its documented status; RPC errors are proper gRPC codes
 * (never INTERNAL/UNKNOWN); a key in the query string is always 400 key_in_url; no response holds
 * the secret of an issued key the request did not carry (the issue response holds its own); a
 * customer key never sees another customer's ids, nor a bound key another instance's keys.
 * Throughout: the process stays up; at the end its RSS is bounded, and no secret (nor the
 * internal token) is in any log line or audit event.
 *
 * Size: FUZZ_RUNS requests in all (default 5000, ~20-40 s on 2 cores); `scripts/fuzz.sh` runs
 * 100 000. FUZZ_SEED replays a run; FUZZ_FAIL_FAST=1 stops at the first bad request and lets
 * fast-check shrink it (by default every violation is collected, grouped and reported at the end).
 */

const TOTAL = Number(process.env.FUZZ_RUNS ?? 5000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
/**
 * Every seed that ever failed (test/e2e/fuzz-regressions.json) runs first, at the run count that
 * found it, then the random SEED; FUZZ_SEED replays one seed alone. A violation names its seed.
 */
const REGRESSIONS: Array<{ seed: number; runs: number }> = JSON.parse(readFileSync(new URL("./fuzz-regressions.json", import.meta.url), "utf8")).seeds;
const RUNS: Array<{ seed: number; total: number }> = process.env.FUZZ_SEED
  ? [{ seed: SEED, total: TOTAL }]
  : [...REGRESSIONS.filter((r) => r.seed !== SEED).map((r) => ({ seed: r.seed, total: r.runs })), { seed: SEED, total: TOTAL }];
const ALL_RUNS = RUNS.reduce((n, r) => n + r.total, 0);
/** The seed whose inputs are being sent now. */
let currentSeed = RUNS[0]!.seed;
const FAIL_FAST = process.env.FUZZ_FAIL_FAST === "1";
const RSS_LIMIT_MIB = Number(process.env.FUZZ_RSS_LIMIT_MIB ?? 400);
const BATCH = 8;
const BODY_LIMIT = 64 * 1024;
const SHARE = { rest: 0.5, rpc: 0.27, connect: 0.1, grpcRaw: 0.1, raw: 0.03 };
const runsFor = (share: number, total: number) => Math.max(1, Math.ceil((total * share) / BATCH));
/** Per-test timeout: generous, proportional to the work. */
const timeoutFor = (share: number) => Math.max(120_000, ALL_RUNS * share * 60);

const REST_STATUSES = new Set([200, 201, 204, 400, 401, 403, 404, 405, 413, 429]);
/**
 * gRPC codes a hostile request may legitimately get: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
 * PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION (e.g. changing a revoked key's expiry),
 * ABORTED (an idempotency conflict), UNAUTHENTICATED.
 */
const RPC_CODES = new Set([3, 5, 6, 7, 8, 9, 10, 16]);
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const KEY_ID_IN_TEXT = /key_[0-9A-HJKMNP-TV-Z]{26}/g;

interface Cred {
  label: string;
  secret: string;
  id: string;
  customerId: string;
  instanceId: string | null;
  internal?: boolean;
}

let server: RunningServer;
let http: FuzzHttpClient;
let clients: RpcClient[] = [];
/** grpc-js clients that send raw bytes (identity serializers), on PORT and on GRPC_PORT. */
let rawGrpc: Record<"PORT" | "GRPC_PORT", grpc.Client>;
const A: string = uuid();
const B: string = uuid();
const IA1 = uuid();
const IA2 = uuid();
const IB1 = uuid();
const registry = new SecretRegistry();
/** Owner of every key id the test knows of. */
const owner = new Map<string, { customerId: string; instanceId: string | null }>();
interface Pools {
  credential: Cred[];
  secret: string[];
  targetId: string[];
  ownId: string[];
  foreignId: string[];
  /** `foreignId` less the other customer's credentials: what a mutation may target. */
  foreignTargetId: string[];
  customerId: string[];
  instanceId: string[];
}
const pools: Pools = {
  credential: [],
  secret: [],
  targetId: [],
  ownId: [],
  foreignId: [],
  foreignTargetId: [],
  customerId: [A, B, A.toUpperCase(), uuid()],
  instanceId: [IA1, IA2, IB1, uuid()],
};
const counts = { rest: 0, raw: 0, connect: 0, rpc: 0, grpcRaw: 0, setup: 0 };
const statusHistogram = new Map<string, number>();
const notes = new Map<string, number>();
/** The slowest request of each kind: a hostile input that costs seconds is a denial of service. */
const slowest = new Map<string, { ms: number; what: string }>();
const timed = (kind: string, ms: number, what: () => string) => {
  if (ms > (slowest.get(kind)?.ms ?? 0)) slowest.set(kind, { ms, what: what() });
};
const rpcLatency = new Map<string, { n: number; sum: number; max: number }>();
let transportCuts = 0;
let clientResets = 0;
let rawPending = 0;
const violations = new Map<string, { count: number; example: string; seeds: Set<number> }>();
let violationsThisRun = 0;
const rss = { start: 0, peak: 0, end: 0 };

const total = () => counts.rest + counts.raw + counts.connect + counts.rpc + counts.grpcRaw;
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
const cut = (s: string, n = 400) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
const safeJson = (text: string): any => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/**
 * A request Node's HTTP/1.1 parser refused (headers over 16 KiB, say) never reached a transport,
 * so nothing saw its URL or knew its protocol: it is answered 400 invalid_argument in SPEC §3's
 * shape (checked by the REST phase's shape test), whatever the path and protocol.
 */
const parserRefused = (status: number, error: { code?: string; message?: string } | undefined): boolean =>
  status === 400 && error?.code === "invalid_argument" && PARSER_REFUSAL_MESSAGES.has(error.message ?? "");
const PARSER_REFUSED_NOTE = "a key in the query string of a request Node's parser refused: 400 invalid_argument";
const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

function violate(signature: string, detail: () => string): void {
  violationsThisRun++;
  const v = violations.get(signature);
  if (v) {
    v.count++;
    v.seeds.add(currentSeed);
  } else violations.set(signature, { count: 1, example: detail(), seeds: new Set([currentSeed]) });
}

function trackIssued(key: { id: string; customer_id?: string; customerId?: string; instance_id?: string | null; instanceId?: string }, secret: string): void {
  registry.add(secret);
  owner.set(key.id, { customerId: (key.customer_id ?? key.customerId ?? "").toLowerCase(), instanceId: key.instance_id ?? (key.instanceId || null) });
  pools.targetId.push(key.id);
  pools.secret.push(secret);
}

function pick<T>(pool: T[], n: number): T {
  if (pool.length === 0) throw new Error("empty pool");
  return pool[n % pool.length]!;
}

/** A pool value; a mutation never targets the credentials the fuzzer itself relies on. */
function resolve(r: Ref, mutating: boolean): string {
  if (r.ref === "ownId" && mutating) return pick(pools.targetId, r.n);
  if (r.ref === "foreignId" && mutating) return pick(pools.foreignTargetId, r.n);
  if (r.ref === "credential") throw new Error("use cred()");
  const pool = pools[r.ref as Exclude<keyof Pools, "credential">];
  if (!pool) throw new Error(`no pool ${r.ref}`);
  return pick(pool, r.n);
}
const cred = (r: Ref): Cred => pick(pools.credential, r.n);

function resolveDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(resolveDeep);
  if (v && typeof v === "object" && !(v instanceof Uint8Array)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 2 && typeof o.ref === "string" && typeof o.n === "number") return resolve(o as unknown as Ref, true);
    return Object.fromEntries(keys.map((k) => [k, resolveDeep(o[k])]));
  }
  return v;
}

/** `?a=b&…` from generated query parameters (pool references resolved), or "" for none. */
const queryString = (q: Array<[string, string | Ref]> | null) =>
  q?.length ? `?${q.map(([k, v]) => `${pct(k)}=${pct(typeof v === "string" ? v : resolve(v, false))}`).join("&")}` : "";

/** Percent-encodes the UTF-8 bytes of `s` (lone surrogates become U+FFFD, as any client would send). */
const pct = (s: string) =>
  [...Buffer.from(s, "utf8")].map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
/** What node:http accepts in a header value. */
const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, "?");
const secretOf = (c: Cred) => (c.internal ? server.internalToken : c.secret);

/** Problems with what a customer-key caller got back: other tenants' (or instances') data. */
function tenancyProblems(caller: Cred | null, text: string, requestText: string, isAudit: boolean): string[] {
  if (!caller || caller.internal) return [];
  const problems: string[] = [];
  for (const m of text.matchAll(KEY_ID_IN_TEXT)) {
    const id = m[0];
    const o = owner.get(id);
    if (!o || requestText.includes(id)) continue;
    if (o.customerId !== caller.customerId) problems.push(`sees key ${id} of another customer`);
    else if (caller.instanceId && !isAudit && o.instanceId !== caller.instanceId) problems.push(`bound key sees key ${id} of instance ${o.instanceId}`);
  }
  for (const other of [A, B]) {
    if (other !== caller.customerId && text.includes(other) && !requestText.toLowerCase().includes(other)) problems.push("sees another customer's id");
  }
  return problems;
}

/** Issued secrets in a response that the request did not carry itself. */
function leakedSecrets(text: string, requestText: string, own?: string): string[] {
  return registry.find(text).filter((s) => s !== own && !requestText.includes(s.slice(9, 52)));
}

function checkAlive(): void {
  if (server.process.exitCode !== null || server.process.signalCode !== null) {
    throw new Error(`the server died (exit ${server.process.exitCode}, signal ${server.process.signalCode}) after ${total()} requests:\n${server.output().slice(-5000)}`);
  }
  const r = rssMiB(server.process.pid!);
  if (r > rss.peak) rss.peak = r;
  if (TOTAL >= 20_000 && Math.floor(total() / 10_000) > lastProgress) {
    lastProgress = Math.floor(total() / 10_000);
    console.log(`[fuzz] ${total()} requests, RSS ${r} MiB, ${violations.size} distinct violations so far`);
  }
}
let lastProgress = 0;

beforeAll(async () => {
  server = await startServer({ RATE_LIMIT_CAPACITY: "1000000", RATE_LIMIT_REFILL_PER_SEC: "1000000", LOG_LEVEL: "debug" });
  http = new FuzzHttpClient("127.0.0.1", server.port, BATCH * 2);
  clients = allRpcClients(server);
  rawGrpc = {
    PORT: new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()),
    GRPC_PORT: new grpc.Client(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure()),
  };
  const make = async (label: string, customerId: string, fields: Record<string, unknown>, asCred = true) => {
    const k = await issueAsInternal(server, customerId, { name: label, ...fields });
    counts.setup++;
    registry.add(k.secret);
    owner.set(k.id, { customerId, instanceId: (fields.instance_id as string | undefined) ?? null });
    pools.secret.push(k.secret);
    if (customerId === B) pools.foreignId.push(k.id);
    if (customerId === B && !asCred) pools.foreignTargetId.push(k.id);
    if (asCred) {
      pools.credential.push({ label, secret: k.secret, id: k.id, customerId, instanceId: (fields.instance_id as string | undefined) ?? null });
      pools.ownId.push(k.id);
    } else pools.targetId.push(k.id);
    return k;
  };
  for (const [c, inst] of [[A, IA1], [B, IB1]] as const) {
    await make(`${c === A ? "A" : "B"}-full`, c, {});
    await make("read-only", c, { scopes: ["api_keys:read"] });
    await make("write-only", c, { scopes: ["api_keys:write"] });
    await make("audit-only", c, { scopes: ["audit:read"] });
    await make("bound", c, { instance_id: inst });
    const revoked = await make("revoked", c, {});
    const r = await rest(server, "DELETE", `/v1/api-keys/${revoked.id}?customer_id=${c}`, { key: server.internalToken });
    if (r.status !== 204) throw new Error(`revoke failed: ${r.status}`);
    await make("expiring", c, { expires_at: new Date(Date.now() + 1500).toISOString() });
    for (let i = 0; i < 4; i++) await make(`victim-${i}`, c, {}, false);
    await make("victim-bound-1", c, { instance_id: inst }, false);
    await make("victim-bound-2", c, { instance_id: c === A ? IA2 : uuid() }, false);
  }
  pools.credential.push({ label: "internal", secret: "", id: "", customerId: "", instanceId: null, internal: true });
  await sleep(1600); // the "expiring" credentials are now expired
  rss.start = rssMiB(server.process.pid!);
  rss.peak = rss.start;
  console.log(`[fuzz] seeds: ${RUNS.map((r) => `${r.seed} x ${r.total}`).join(", ")} (random seed ${SEED}; set FUZZ_SEED=${SEED} to replay it) server pid ${server.process.pid}, RSS at start ${rss.start} MiB`);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  rawGrpc?.PORT.close();
  rawGrpc?.GRPC_PORT.close();
  http?.close();
  await server?.stop();
});

/** Runs `n` batches of BATCH generated inputs, concurrently within a batch. */
async function fuzz<T>(arb: fc.Arbitrary<T>, share: number, send: (input: T) => Promise<void>): Promise<void> {
  for (const { seed, total } of RUNS) {
    currentSeed = seed;
    await fuzzOne(arb, share, send, seed, total);
  }
}

async function fuzzOne<T>(arb: fc.Arbitrary<T>, share: number, send: (input: T) => Promise<void>, seed: number, total: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.array(arb, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
      violationsThisRun = 0;
      await Promise.all(batch.map(send));
      checkAlive();
      if (FAIL_FAST && violationsThisRun > 0) throw new Error(`violations: ${[...violations.keys()].join("; ")}`);
    }),
    { numRuns: runsFor(share, total), seed, endOnFailure: !FAIL_FAST, verbose: FAIL_FAST ? 1 : 0 },
  );
}

it("REST: random methods, paths under /v1, queries, headers and bodies", async () => {
  await fuzz(restSpec, SHARE.rest, sendRest);
}, timeoutFor(SHARE.rest));

async function sendRest(spec: RestSpec): Promise<void> {
  const mutating = !["GET", "HEAD"].includes(spec.method);
  const path = spec.path.map((p) => (typeof p === "string" ? p : "pct" in p ? pct(p.pct) : pct(resolve(p, mutating)))).join("");
  const query = spec.query.map(([k, v]) => `${pct(k)}=${pct(typeof v === "string" ? v : resolve(v, false))}`).join("&");
  const url = query ? `${path}${path.includes("?") ? "&" : "?"}${query}` : path;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.headers)) headers[k] = headerSafe(v);
  let caller: Cred | null = null;
  const a = spec.auth;
  if (a.kind === "bearer" || a.kind === "both") {
    caller = cred(a.cred);
    headers.authorization = `Bearer ${secretOf(caller)}`;
    if (a.kind === "both") headers["x-api-key"] = secretOf(cred({ ref: "credential", n: a.cred.n + 1 }));
  } else if (a.kind === "x-api-key") {
    caller = cred(a.cred);
    headers["x-api-key"] = secretOf(caller);
  } else if (a.kind === "raw-authorization") headers.authorization = headerSafe(a.value);
  else if (a.kind === "raw-x-api-key") headers["x-api-key"] = headerSafe(a.value);
  else if (a.kind === "key-as-bearer") headers[a.header] = headerSafe(a.header === "authorization" ? `Bearer ${a.key}` : a.key);
  let body: Buffer | undefined;
  if (spec.body?.json !== undefined) body = Buffer.from(JSON.stringify(resolveDeep(spec.body.json)) ?? "null", "utf8");
  else if (typeof spec.body?.raw === "string") body = Buffer.from(spec.body.raw, "utf8");
  else if (spec.body?.raw) body = Buffer.from(spec.body.raw);

  const requestText = `${spec.method} ${url} ${JSON.stringify(headers)} ${body?.toString("utf8") ?? ""}`;
  const describe = (extra: string) =>
    `${spec.method} ${cut(url, 300)}\n  headers ${cut(JSON.stringify(headers), 400)}\n  body ${cut(body?.toString("utf8") ?? "(none)", 300)}\n  caller ${caller?.label ?? "-"}\n  ${extra}`;

  counts.rest++;
  let res;
  try {
    res = await http.request(spec.method, url, headers, body);
  } catch (e) {
    if ((body?.length ?? 0) > BODY_LIMIT) {
      transportCuts++; // the server answered 413 and closed while the client was still sending
      return;
    }
    violate(`REST transport error: ${(e as Error).message.replace(/ \[.*/, "")}`, () => describe(String(e)));
    return;
  }
  bump(statusHistogram, `REST ${res.status}`);
  timed("REST", res.ms, () => `${spec.method} ${cut(url, 120)} body ${body?.length ?? 0} B: ${cut(body?.toString("utf8") ?? "", 120)} -> ${res.status}`);
  const requestId = typeof res.headers["x-request-id"] === "string" ? res.headers["x-request-id"] : "";
  const details = (problem: string) => () =>
    describe(`-> ${res.status} ${cut(res.text, 500)}\n  problem: ${problem}\n  server log for ${requestId || "(no request id)"}:\n    ${logLinesFor(server.output(), requestId).map((l) => cut(l, 1500)).join("\n    ")}`);

  let parsed: URL | null = null;
  try {
    parsed = new URL(url, "http://localhost");
  } catch {
    /* unparsable URLs are the server's to refuse */
  }
  // RPC paths (`/apikeys.v1.ApiKeyService/…`) are connect-node's: Connect error shapes, checked below.
  const rpcPath = parsed?.pathname.startsWith("/apikeys.") ?? false;
  if (rpcPath && res.status === 501 && /"unimplemented".*compression/.test(res.text)) return void bump(notes, "Connect 501 unimplemented for an unsupported Content-Encoding (as the Connect protocol specifies)");
  if (rpcPath && res.status >= 500) return violate(connectSignature(res.status, res.text), details("5xx"));
  if (res.status >= 500) return violate(`REST ${res.status} on ${spec.method} ${spec.path.map((p) => (typeof p === "string" ? p : "pct" in p ? "{raw}" : `{${p.ref}}`)).join("")}`, details("5xx"));
  if (!REST_STATUSES.has(res.status) && !(rpcPath && res.status === 415)) violate(`REST unexpected status ${res.status}`, details("status"));
  if (requestId && !SANE_REQUEST_ID.test(requestId)) violate("REST X-Request-Id echoes unsafe characters", details(requestId));
  if (res.status >= 400 && !rpcPath) {
    for (const p of errorShapeProblems(res.status, res.headers, res.text, { head: spec.method === "HEAD" })) violate(`REST error shape: ${p.replace(/[0-9]+|"[^"]*"/g, "#")}`, details(p));
  }
  // SPEC §3: a key in the query string is refused (400 key_in_url) before any other check, on
  // every path of PORT; on RPC paths in that protocol's error form.
  if (parsed && keyInQuery(parsed)) {
    if (rpcPath) {
      if (parserRefused(res.status, safeJson(res.text)?.error)) return void bump(notes, PARSER_REFUSED_NOTE);
      const problems = spec.method === "HEAD" ? (res.status === 400 || res.headers["grpc-status"] === "3" ? [] : [`HEAD answered ${res.status}`]) : rpcKeyInUrlProblems(String(spec.headers["content-type"] ?? ""), res.status, res.headers, res.text);
      bump(notes, "REST phase: key in the query string of an RPC path (checked)");
      for (const p of problems) violate(`key in the query string of an RPC path: ${p.replace(/[0-9]+|"[^"]*"/g, "#")}`, details(p));
      return;
    }
    {
      // Unparsable bodies are reported by the shape check above.
      const error: { code?: string; message?: string } | undefined = safeJson(res.text)?.error;
      if (parserRefused(res.status, error)) return void bump(notes, PARSER_REFUSED_NOTE);
      if (res.status !== 400 || (spec.method !== "HEAD" && error?.code !== "key_in_url")) violate(`key in the query string answered ${res.status} ${error?.code}`, details("expected 400 key_in_url"));
      return;
    }
  }
  let json: any;
  if (res.status === 204) {
    if (res.text !== "") violate("REST 204 with a body", details("body"));
  } else if (spec.method !== "HEAD" && res.status < 300 && !rpcPath) {
    try {
      json = JSON.parse(res.text);
    } catch {
      violate("REST 2xx body is not JSON", details("not JSON"));
    }
  }
  const isAudit = parsed?.pathname.includes("audit") ?? false;
  for (const p of tenancyProblems(caller, res.text, requestText, isAudit)) violate(`TENANCY: ${p.replace(/key_\w+|[0-9a-f-]{36}/g, "#")}`, details(p));
  const ownSecret = res.status === 201 && typeof json?.secret === "string" ? json.secret : undefined;
  const leaked = leakedSecrets(res.text, requestText, ownSecret);
  if (leaked.length) violate("SECRET in a REST response", details(`secrets of other keys: ${leaked.map((s) => s.slice(0, 17)).join(", ")}`));
  if (res.status === 201) {
    if (!/^zpk_(live|test)_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$/.test(json?.secret ?? "")) violate("REST 201 without a well-formed secret", details("secret"));
    else trackIssued(json, json.secret);
  }
}

it("raw HTTP/1.1 requests node:http would not build", async () => {
  await fuzz(rawRequest, SHARE.raw, async (r) => {
    counts.raw++;
    const wire = Buffer.from(`${r.lines.join("\r\n")}\r\nConnection: close\r\n\r\n${r.body}`, "latin1");
    const res = await rawExchange(server.port, wire, 1_500);
    if (res.status === null) {
      if (res.text === "" && !res.closedByServer) rawPending++; // waiting for a body that never comes
      else if (res.text !== "") violate("raw: unparsable response", () => `${cut(wire.toString("latin1"))}\n-> ${cut(res.text)}`);
      return;
    }
    bump(statusHistogram, `raw ${res.status}`);
    const { headers, body } = rawBody(res.text);
    const detail = () => `${cut(JSON.stringify(wire.toString("latin1")), 600)}\n-> ${cut(res.text, 600)}`;
    if (res.status >= 500) return violate(`raw: HTTP ${res.status}`, detail);
    if (/^HEAD /.test(r.lines[0]!)) {
      // A response to HEAD has no content (RFC 9110 §9.3.2), refusals by the parser included.
      if (body !== "") violate("raw: a response to HEAD has a body", detail);
      return;
    }
    if (res.status >= 400) {
      const hdrs: Record<string, string> = {};
      for (const line of headers.split("\r\n").slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) hdrs[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      for (const p of errorShapeProblems(res.status, hdrs, body)) violate(`raw error shape: ${p.replace(/[0-9]+|"[^"]*"/g, "#")}`, detail);
    }
  });
}, timeoutFor(SHARE.raw) + 60_000);

it("Connect protocol: hand-made JSON and protobuf bodies", async () => {
  await fuzz(connectRaw, SHARE.connect, async (c) => {
    counts.connect++;
    const headers: Record<string, string> = { "content-type": c.contentType, "connect-protocol-version": "1" };
    let caller: Cred | null = null;
    if (c.auth.kind === "internal") headers.authorization = `Bearer ${server.internalToken}`;
    else if (c.auth.kind === "cred") {
      caller = cred(c.auth.cred);
      headers.authorization = `Bearer ${secretOf(caller)}`;
    } else if (c.auth.kind === "raw") headers.authorization = headerSafe(c.auth.value);
    const body = typeof c.body === "string" ? Buffer.from(resolveRefsInText(c.body), "utf8") : Buffer.from(c.body);
    const query = queryString(c.query);
    const path = `/apikeys.v1.ApiKeyService/${c.method}${query}`;
    const keyInUrl = keyInQuery(new URL(path, "http://localhost"));
    const requestText = `${path} ${JSON.stringify(headers)} ${body.toString("utf8")}`;
    let res;
    try {
      res = await http.request("POST", path, headers, body, 15_000, c.contentType);
    } catch (e) {
      if (body.length > BODY_LIMIT) {
        transportCuts++;
        return;
      }
      return violate(`Connect transport error: ${(e as Error).message.replace(/ \[.*/, "")}`, () => `${path} ${cut(requestText)}\n  ${(e as Error).message}`);
    }
    bump(statusHistogram, `connect ${res.status}`);
    timed("Connect", res.ms, () => `${c.method} ${c.contentType} body ${body.length} B: ${cut(body.toString("utf8"), 120)} -> ${res.status} ${cut(res.text, 100)}`);
    const requestId = typeof res.headers["x-request-id"] === "string" ? res.headers["x-request-id"] : "";
    const detail = (p: string) => () =>
      `POST ${path} ${cut(requestText)}\n-> ${res.status} ${cut(res.text, 500)}\n  problem: ${p}\n  server log:\n    ${logLinesFor(server.output(), requestId).map((l) => cut(l, 1500)).join("\n    ")}`;
    if (keyInUrl) {
      if (parserRefused(res.status, safeJson(res.text)?.error)) return void bump(notes, PARSER_REFUSED_NOTE);
      bump(notes, "Connect: key in the query string (checked)");
      for (const p of rpcKeyInUrlProblems(c.contentType, res.status, res.headers, res.text)) violate(`Connect: key in the query string: ${p.replace(/[0-9]+|"[^"]*"/g, "#")}`, detail(p));
      return;
    }
    if (res.status === 501 && /"unimplemented".*compression/.test(res.text)) return void bump(notes, "Connect 501 unimplemented for an unsupported Content-Encoding (as the Connect protocol specifies)");
    if (res.status >= 500) return violate(connectSignature(res.status, res.text), detail("5xx"));
    if (res.status >= 400) {
      let json: any;
      try {
        json = JSON.parse(res.text);
      } catch {
        if (res.status === 415 && res.text === "") return; // connect-node: unsupported content type
        return violate(`Connect ${res.status} error body is not JSON`, detail("not JSON"));
      }
      if (json && typeof json === "object" && "error" in json) {
        for (const p of errorShapeProblems(res.status, res.headers, res.text)) violate(`Connect (REST-shaped) error: ${p.replace(/[0-9]+|"[^"]*"/g, "#")}`, detail(p));
      } else if (typeof json?.code !== "string" || ["internal", "unknown", "data_loss"].includes(json.code)) {
        violate(`Connect error code ${json?.code}`, detail("code"));
      }
    }
    // A 200 IssueKey answer (JSON or binary) holds the new key's secret: its own, and new to us.
    const own = res.status === 200 && c.method === "IssueKey" ? [...res.text.matchAll(SECRET_LIKE)].map((m) => m[0]) : [];
    const leaked = leakedSecrets(res.text, requestText).filter((x) => !own.includes(x));
    if (leaked.length) violate("SECRET in a Connect response", detail(`secrets: ${leaked.map((s) => s.slice(0, 17)).join(", ")}`));
    for (const p of tenancyProblems(caller, res.text, requestText, c.method === "ListAuditEvents")) violate(`TENANCY (Connect): ${p.replace(/key_\w+|[0-9a-f-]{36}/g, "#")}`, detail(p));
    if (own.length === 1) {
      let out: any = null;
      try {
        out = JSON.parse(res.text);
      } catch {
        /* binary */
      }
      if (out?.key?.id) trackIssued(out.key, own[0]!);
      else registry.add(own[0]!);
    }
  });
}, timeoutFor(SHARE.connect));

/** One signature per Connect failure kind (method and details vary; the cause does not). */
const connectSignature = (status: number, text: string) =>
  `Connect HTTP ${status}: ${text.replace(/"message":"([^":]*)[^"]*"/, '"message":"$1…"').replace(/[0-9]+/g, "#").slice(0, 100)}`;

/** Connect JSON bodies may carry `{"ref":…,"n":…}` objects from the shared arbitraries: resolve them. */
function resolveRefsInText(text: string): string {
  try {
    return JSON.stringify(resolveDeep(JSON.parse(text)));
  } catch {
    return text;
  }
}

it("RPCs over every transport with random field values", async () => {
  expect(clients.length).toBe(5);
  await fuzz(rpcCall, SHARE.rpc, async (spec) => {
    counts.rpc++;
    const client = clients[spec.transport % clients.length]!;
    const headers: Record<string, string> = {};
    let caller: Cred | null = null;
    if (spec.auth.kind === "internal") headers.authorization = `Bearer ${server.internalToken}`;
    else if (spec.auth.kind === "cred") {
      caller = cred(spec.auth.cred);
      headers.authorization = `Bearer ${secretOf(caller)}`;
    } else if (spec.auth.kind === "raw") headers.authorization = spec.auth.value;
    if (spec.requestId !== null) headers["x-request-id"] = spec.requestId;
    const method = spec.call.method as Parameters<RpcClient["call"]>[0];
    const req = resolveDeep(spec.call.req) as Record<string, unknown>;
    const requestText = `${JSON.stringify(req, replacer)} ${JSON.stringify(headers)}`;
    const t0 = performance.now();
    let r = await client.call(method, req as never, headers);
    // Over HTTP/1.1 (connect, grpc-web) a call can land on a keep-alive connection that an earlier
    // oversized gRPC-Web message left with an unread body: the server never answers it and resets
    // the connection ~6 s later (see hostile-connections.test.ts). That is reported there and by
    // the Connect phase; here the call is retried once on a fresh connection and counted.
    if (!r.ok && /ECONNRESET|socket hang up|EPIPE/.test(r.message)) {
      clientResets++;
      r = await client.call(method, req as never, headers);
    }
    const ms = performance.now() - t0;
    timed("RPC", ms, () => `${client.name} ${method} ${cut(requestText, 160)}`);
    const lat = rpcLatency.get(method) ?? { n: 0, sum: 0, max: 0 };
    rpcLatency.set(method, { n: lat.n + 1, sum: lat.sum + ms, max: Math.max(lat.max, ms) });
    const describe = (p: string, out: string) =>
      `${client.name} ${method} ${cut(requestText, 600)}\n  caller ${caller?.label ?? spec.auth.kind}\n-> ${out}\n  problem: ${p}`;
    if (!r.ok) {
      bump(statusHistogram, `rpc code ${r.code}`);
      if (!RPC_CODES.has(r.code)) {
        const sent = spec.requestId !== null && SANE_REQUEST_ID.test(spec.requestId) ? spec.requestId : "";
        const rid = r.metadata.get("x-request-id") ?? sent;
        violate(`RPC ${method} -> gRPC code ${r.code}: ${r.message.replace(/[0-9]+/g, "#").slice(0, 60)}`, () =>
          describe(`code ${r.code}`, `${r.code} ${cut(r.message, 300)}\n  server log:\n    ${logLinesFor(server.output(), rid).map((l) => cut(l, 1500)).join("\n    ")}`));
      }
      if (/\n\s+at |\.ts:\d+|node_modules/.test(r.message)) violate("RPC error message has a stack trace", () => describe("stack", r.message));
      return;
    }
    bump(statusHistogram, "rpc ok");
    const text = JSON.stringify(r.res, replacer);
    const res = r.res as any;
    const own = method === "issueKey" ? (res.secret as string) : undefined;
    const leaked = leakedSecrets(text, requestText, own);
    if (leaked.length) violate(`SECRET in an RPC ${method} response`, () => describe(`secrets: ${leaked.map((s) => s.slice(0, 17)).join(", ")}`, cut(text, 500)));
    for (const p of tenancyProblems(caller, text, requestText, method === "listAuditEvents")) violate(`TENANCY (RPC ${method}): ${p.replace(/key_\w+|[0-9a-f-]{36}/g, "#")}`, () => describe(p, cut(text, 500)));
    if (method === "issueKey" && own) trackIssued(res.key, own);
  });
}, timeoutFor(SHARE.rpc));

it("gRPC with mangled message bytes, on PORT and GRPC_PORT", async () => {
  await fuzz(grpcRaw, SHARE.grpcRaw, async (g) => {
    counts.grpcRaw++;
    const desc = ApiKeyService.method[g.call.method as keyof typeof ApiKeyService.method];
    let bytes = Buffer.from(toBinary(desc.input as DescMessage, create(desc.input as DescMessage, resolveDeep(g.call.req) as never)));
    const m = g.mangle;
    if (m.kind === "truncate") bytes = bytes.subarray(0, bytes.length ? m.at % bytes.length : 0);
    else if (m.kind === "append") bytes = Buffer.concat([bytes, Buffer.from(m.bytes)]);
    else if (m.kind === "flip" && bytes.length) bytes[m.at % bytes.length] = bytes[m.at % bytes.length]! ^ m.xor;
    else if (m.kind === "random") bytes = Buffer.from(m.bytes);
    const md = new grpc.Metadata();
    let caller: Cred | null = null;
    if (g.auth.kind === "internal") md.set("authorization", `Bearer ${server.internalToken}`);
    else if (g.auth.kind === "cred") {
      caller = cred(g.auth.cred);
      md.set("authorization", `Bearer ${secretOf(caller)}`);
    } else if (g.auth.kind === "raw") md.set("authorization", g.auth.value);
    // A query string only on PORT (grpc-js on GRPC_PORT routes by the whole :path).
    const query = g.target === "PORT" ? queryString(g.query) : "";
    const path = `/${ApiKeyService.typeName}/${desc.name}${query}`;
    const keyInUrl = keyInQuery(new URL(path, "http://localhost"));
    const result = await new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((done) =>
      rawGrpc[g.target].makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, md, { deadline: Date.now() + 10_000 }, (err, res) => done({ err, res })),
    );
    const requestText = `${bytes.toString("latin1")} ${JSON.stringify(md.getMap())}`;
    const detail = (p: string) => () => `${g.target} ${path} ${m.kind} bytes=${cut(bytes.toString("hex"), 300)}\n  caller ${caller?.label ?? g.auth.kind}\n-> ${p}`;
    if (keyInUrl) {
      bump(notes, "gRPC raw on PORT: key in the query string (checked)");
      if (result.err?.code !== 3 || !result.err.details.startsWith(KEY_IN_URL_MESSAGE_START)) {
        violate(`gRPC raw on PORT: key in the query string answered ${result.err ? `code ${result.err.code}` : "OK"}`, detail(`${result.err?.code} ${result.err?.details}`));
      }
      return;
    }
    if (result.err) {
      bump(statusHistogram, `grpc-raw code ${result.err.code}`);
      if (!RPC_CODES.has(result.err.code)) violate(`gRPC raw bytes on ${g.target} -> code ${result.err.code}: ${result.err.details.replace(/(%3A|:).*/, "…")}`, detail(`${result.err.code} ${result.err.details}`));
      return;
    }
    bump(statusHistogram, "grpc-raw ok");
    const text = result.res!.toString("latin1");
    const own = desc.name === "IssueKey" ? [...text.matchAll(SECRET_LIKE)].map((x) => x[0]) : [];
    const leaked = leakedSecrets(text, requestText).filter((x) => !own.includes(x));
    if (leaked.length) violate("SECRET in a gRPC response", detail(`secrets: ${leaked.map((s) => s.slice(0, 17)).join(", ")}`));
    for (const p of tenancyProblems(caller, text, requestText, desc.name === "ListAuditEvents")) violate(`TENANCY (gRPC raw ${desc.name}): ${p.replace(/key_\w+|[0-9a-f-]{36}/g, "#")}`, detail(p));
    for (const o of own) registry.add(o);
  });
}, timeoutFor(SHARE.grpcRaw));

it("after the storm: alive, RSS bounded, no secret in any log line or audit event", async () => {
  checkAlive();
  const health = await rest(server, "GET", "/healthz");
  if (health.status !== 200) violate(`after the run, /healthz answers ${health.status}`, () => JSON.stringify(health.body));
  // Each customer's own list still works after the storm (a stored value that cannot be rendered
  // would break it for good).
  for (const label of ["A-full", "B-full"]) {
    const full = pools.credential.find((c) => c.label === label)!;
    const list = await rest(server, "GET", "/v1/api-keys?page_size=100&include_inactive=true", { key: full.secret });
    if (list.status !== 200) {
      const rid = list.headers.get("x-request-id") ?? "";
      violate(`after the run, ${label}'s own key list answers ${list.status}`, () => `${JSON.stringify(list.body)}\n  server log:\n    ${logLinesFor(server.output(), rid).map((l) => cut(l, 1500)).join("\n    ")}`);
    }
  }

  // Audit events: every customer's trail and the global one (unknown/malformed failures), capped.
  let pages = 0;
  let events = 0;
  for (const c of [A, B, null]) {
    let token: string | null = null;
    let n = 0;
    do {
      const q = new URLSearchParams({ page_size: "100" });
      if (c) q.set("customer_id", c);
      if (token) q.set("page_token", token);
      const res = await http.request("GET", `/v1/audit-events?${q}`, { authorization: `Bearer ${server.internalToken}` });
      if (res.status !== 200) {
        violate(`after the run, the audit trail of ${c ?? "all customers"} answers ${res.status}`, () => cut(res.text, 500));
        break;
      }
      const leaked = registry.find(res.text);
      if (leaked.length) violate("SECRET in an audit event", () => cut(res.text, 1000));
      if (res.text.includes(server.internalToken)) violate("internal token in an audit event", () => cut(res.text, 1000));
      const body = JSON.parse(res.text);
      events += body.data.length;
      token = body.next_page_token;
      pages++;
    } while (token && ++n < 200);
  }

  // Logs: JSON lines, no secret, no internal token.
  await sleep(300); // pino writes asynchronously
  const out = server.output();
  const lines = out.split("\n").filter((l) => l.trim() !== "");
  const notJson = lines.filter((l) => {
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
  if (notJson.length) violate("log lines that are not JSON", () => notJson.slice(0, 5).map((l) => cut(l, 300)).join("\n"));
  const inLogs = registry.find(out);
  if (inLogs.length) violate("SECRET in the server log", () => inLogs.map((s) => out.split("\n").find((l) => l.includes(s.slice(9, 52)))).map((l) => cut(l ?? "", 500)).join("\n"));
  if (out.includes(server.internalToken)) violate("internal token in the server log", () => cut(out.split("\n").find((l) => l.includes(server.internalToken)) ?? "", 500));

  rss.end = rssMiB(server.process.pid!);
  rss.peak = Math.max(rss.peak, rss.end);
  const summary = [
    `[fuzz] seeds ${RUNS.map((r) => r.seed).join(", ")}: ${total()} requests fuzzed (REST ${counts.rest}, raw HTTP/1.1 ${counts.raw}, Connect raw ${counts.connect}, RPC ${counts.rpc}, gRPC raw bytes ${counts.grpcRaw}) + ${counts.setup} set-up calls`,
    `[fuzz] issued secrets tracked: ${registry.size}; audit events scanned: ${events} in ${pages} pages; log lines: ${lines.length}`,
    `[fuzz] server RSS: start ${rss.start} MiB, peak ${rss.peak} MiB, end ${rss.end} MiB (limit ${RSS_LIMIT_MIB} MiB)`,
    `[fuzz] outcomes: ${[...statusHistogram].sort().map(([k, v]) => `${k}: ${v}`).join(", ")}`,
    `[fuzz] RPC latency by method (mean/max ms, 8 in flight): ${[...rpcLatency].map(([m, l]) => `${m} ${(l.sum / l.n).toFixed(0)}/${l.max.toFixed(0)}`).join(", ")}`,
    `[fuzz] oversized bodies cut while sending: ${transportCuts}; RPC calls retried after a connection reset: ${clientResets}; raw requests left waiting for their body: ${rawPending}`,
    `[fuzz] slowest: ${[...slowest].map(([k, v]) => `${k} ${v.ms.toFixed(0)} ms (${v.what})`).join("; ")}`,
    `[fuzz] notes: ${[...notes].map(([k, v]) => `${k}: ${v}`).join(", ") || "none"}`,
    `[fuzz] violations: ${violations.size === 0 ? "none" : ""}`,
    ...[...violations].map(([sig, v]) => `  ✗ ${sig} (×${v.count}; replay: ${[...v.seeds].map((s) => `FUZZ_SEED=${s} FUZZ_RUNS=${RUNS.find((r) => r.seed === s)?.total}`).join(" or ")})\n    ${v.example.replace(/\n/g, "\n    ")}`),
  ];
  console.log(summary.join("\n"));
  expect(rss.end, "server RSS at the end").toBeLessThan(RSS_LIMIT_MIB);
  expect(rss.peak, "server RSS peak").toBeLessThan(RSS_LIMIT_MIB);
  const failedSeeds = [...new Set([...violations.values()].flatMap((v) => [...v.seeds]))];
  expect([...violations.keys()], `violations (details above) with seeds ${failedSeeds.join(", ")}: replay one with FUZZ_SEED=<seed> FUZZ_RUNS=<runs>; add a new one to test/e2e/fuzz-regressions.json`).toEqual([]);
}, 180_000);
