/**
 * `npm run bench` — the benchmark of issues 6 and 17 (see bench/README.md). Starts the real server
 * (embedded store; MongoDB too when MONGODB_URI is set) and, next to it, a bare grpc-js server (the
 * Node limit), provisions keys through the internal API, checks every row's answer once with a
 * real client, drives the gRPC rows with h2load (ghz too with BENCH_GHZ=1) and the HTTP/1.1 rows
 * with wrk, in alternating rounds, and prints a markdown table — also written to bench/RESULTS.md
 * by a full-length run — with each row's ratio to its no-op row and to the bare limit.
 *
 * `npm run bench -- flood` runs the flood check instead (bench/flood.ts); BENCH_CPU_PROF=dir takes
 * a CPU profile of one row instead (profileRun below, bench/profile-summary.ts).
 */
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { ab } from "./ab.js";
import { flood } from "./flood.js";
import { inProcess } from "./in-process.js";
import { mongoDriver } from "./mongo-driver.js";
import { summarizeProfile } from "./profile-summary.js";
import {
  AuthenticateRequestSchema,
  AuthenticateResponseSchema,
  DenialReason,
} from "../gen/apikeys/v1/api_key_service_pb.js";
import { CheckRequestSchema, CheckResponseSchema } from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { digestKey } from "../src/domain/key-format.js";
import { type BareServer, MINIMAL_PATH, rawUnary, startBare } from "./lib/bare.js";
import { grpcFrame, type H2loadCheck, h2loadGrpc } from "./lib/h2load.js";
import { findTool, ghz, type GhzCall, type Measurement, wrk } from "./lib/load.js";
import { AUTHENTICATE_PATH, forwardAuthRequest, listRequest } from "./lib/requests.js";
import { cleanup, installCleanup, mongoServerPid, pinApart, unpinLoad } from "./lib/proc.js";
import { fmtInt, fmtMs, fmtRatio, mark, median, progress, roundRatio, type Row, rowsTable } from "./lib/report.js";
import {
  authOutcomes,
  type BenchServer,
  checkStillCharging,
  type Fixture,
  HUGE_LIMIT,
  INTERNAL_TOKEN,
  provision,
  REPO,
  startFlags,
  startServer,
  type StoreKind,
} from "./lib/server.js";
import { commandLine, loadLine, machine, type Settings, settings } from "./lib/settings.js";

const AUTHENTICATE_GHZ = "apikeys.v1.ApiKeyService.Authenticate";
const HEALTH_CHECK_GHZ = "grpc.health.v1.Health.Check";
const ENVOY_CHECK_GHZ = "envoy.service.auth.v3.Authorization.Check";
const HEALTH_PATH = "/grpc.health.v1.Health/Check";
const ENVOY_PATH = "/envoy.service.auth.v3.Authorization/Check";

const GRPC_JS = "GRPC_PORT (grpc-js)";
const CONNECT = "PORT (connect-node)";
const GHZ = ", ghz";
const BARE = "own process (grpc-js)";
const BARE_HTTP = "own process (node:http)";
const HTTP1 = "PORT (HTTP/1.1)";
const AUTHZ = "AUTHZ_PORT (HTTP/1.1)";
const LIMIT = "bare grpc-js limit";
const NOOP_GRPC = "Health/Check";
/**
 * Health/Check sent Authenticate's metadata (`authorization: Bearer <INTERNAL_TOKEN>`), which it
 * ignores. HTTP/2 clients send `authorization` as a never-indexed HPACK literal, so decoding it is
 * transport work every Authenticate pays and the plain Health/Check does not (issue 17's notes).
 */
const NOOP_GRPC_MD = "Health/Check with Authenticate's metadata";
/** The least a correct Authenticate does, on the bare grpc-js server (bench/lib/bare-grpc-server.ts). */
const MINIMAL = "minimal Authenticate (token check, decode, SHA-256, Map lookup) on the bare server";
const NOOP_HTTP = "GET /healthz";
/** The least a correct GET /v1/api-keys does on each store, on the bare node:http server (bench/lib/bare-http.ts). */
const MINIMAL_LIST: Record<StoreKind, string> = {
  embedded: "minimal list (Bearer, SHA-256, Map lookup, SQLite freshness check, the page) on the bare server",
  mongo: "minimal list (Bearer, SHA-256, Map lookup, one find of the page on MongoDB, the page) on the bare server",
};
const AUTH_VALID = "Authenticate valid, charge=0";
const AUTH_CHARGE = "Authenticate valid, charge=1";
const AUTH_UNKNOWN = "Authenticate unknown key";
const AUTH_MALFORMED = "Authenticate malformed key";
const ENVOY_0 = "Envoy Check valid, charge=0";
const ENVOY_1 = "Envoy Check valid, charge=1";
const REST_LIST = "GET /v1/api-keys";
const AT_80 = `${AUTH_VALID}, open loop at 80 % of its best req/s`;
/** Suffix of the rows of the pinned section (pinnedRows). */
const PINNED = ", pinned";
const STORE_LABEL: Record<StoreKind, string> = { embedded: "embedded store (SQLite)", mongo: "MongoDB store" };
const LIST_TARGET: Record<StoreKind, number> = { embedded: 0.5, mongo: 0.3 };
const INTERNAL = { authorization: `Bearer ${INTERNAL_TOKEN}` };

// --- the requests, and the answers checked once with a real client ----------------------------------

/** The gRPC request bodies (each a message in the gRPC frame), the same for h2load, ghz and the checks. */
interface Bodies {
  health: Uint8Array;
  auth0: Uint8Array;
  auth1: Uint8Array;
  unknown: Uint8Array;
  malformed: Uint8Array;
  envoy0: Uint8Array;
  envoy1: Uint8Array;
}

function envoyInit(fx: Fixture, charge: string) {
  return {
    attributes: {
      request: { http: { method: "GET", path: "/orders", headers: { authorization: `Bearer ${fx.validKey}`, "user-agent": "bench" } } },
      contextExtensions: { charge },
    },
  };
}

function bodies(fx: Fixture): Bodies {
  const auth = (key: string, charge = 0) => grpcFrame(AuthenticateRequestSchema, { key, charge });
  return {
    health: grpcFrame(HealthCheckRequestSchema, { service: "" }),
    auth0: auth(fx.validKey),
    auth1: auth(fx.validKey, 1),
    unknown: auth(fx.unknownKey),
    malformed: auth(fx.malformedKey),
    envoy0: grpcFrame(CheckRequestSchema, envoyInit(fx, "0")),
    envoy1: grpcFrame(CheckRequestSchema, envoyInit(fx, "1")),
  };
}

/** What the rows without a server counter expect, learnt from the checks. */
interface Answers {
  /** DATA bytes of one successful Health/Check response (frame header + message), per port. */
  healthOkBytes: { grpc: number; http: number };
  /** The message the real server answers Authenticate(valid, charge=0) with: the bare server's answer. */
  authResponse: Uint8Array;
}

const unframe = (b: Uint8Array) => b.subarray(5);

/**
 * Every gRPC row's answer, once, with @grpc/grpc-js (a real client that reads the status), on top
 * of provision()'s checks over Connect JSON: h2load cannot read gRPC status, so a row of fast
 * errors must be caught here or by the server's counters.
 */
async function checkGrpcAnswers(server: BenchServer, b: Bodies): Promise<Answers> {
  const expect = (what: string, ok: boolean, got: unknown) => {
    if (!ok) throw new Error(`sanity check failed (grpc-js client): ${what}: got ${JSON.stringify(got, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
  };
  const grpcTarget = `127.0.0.1:${server.grpcPort}`;
  const healthOkBytes = { grpc: 0, http: 0 };
  for (const [port, target] of [["grpc", grpcTarget], ["http", `127.0.0.1:${server.port}`]] as const) {
    const h = await rawUnary(target, HEALTH_PATH, unframe(b.health));
    const msg = h.code === 0 ? fromBinary(HealthCheckResponseSchema, h.bytes) : null;
    expect(`Health/Check on ${port === "grpc" ? "GRPC_PORT" : "PORT"} is OK, SERVING`, msg?.status === HealthCheckResponse_ServingStatus.SERVING, h);
    healthOkBytes[port] = 5 + h.bytes.length;
  }
  const answer = async (what: string, path: string, body: Uint8Array, port = grpcTarget) => {
    const r = await rawUnary(port, path, unframe(body), INTERNAL);
    expect(`${what}: gRPC status OK`, r.code === 0, { code: r.code, details: r.details });
    return r.bytes;
  };
  const authResponse = await answer(AUTH_VALID, AUTHENTICATE_PATH, b.auth0);
  expect(`${AUTH_VALID} is valid`, fromBinary(AuthenticateResponseSchema, authResponse).valid, fromBinary(AuthenticateResponseSchema, authResponse));
  const viaConnect = fromBinary(AuthenticateResponseSchema, await answer(`${AUTH_VALID} on PORT`, AUTHENTICATE_PATH, b.auth0, `127.0.0.1:${server.port}`));
  expect(`${AUTH_VALID} on PORT is valid`, viaConnect.valid, viaConnect);
  const charged = fromBinary(AuthenticateResponseSchema, await answer(AUTH_CHARGE, AUTHENTICATE_PATH, b.auth1));
  expect(`${AUTH_CHARGE} is valid`, charged.valid, charged);
  const unknown = fromBinary(AuthenticateResponseSchema, await answer(AUTH_UNKNOWN, AUTHENTICATE_PATH, b.unknown));
  expect(`${AUTH_UNKNOWN} is UNKNOWN`, !unknown.valid && unknown.denialReason === DenialReason.UNKNOWN, unknown);
  const malformed = fromBinary(AuthenticateResponseSchema, await answer(AUTH_MALFORMED, AUTHENTICATE_PATH, b.malformed));
  expect(`${AUTH_MALFORMED} is MALFORMED`, !malformed.valid && malformed.denialReason === DenialReason.MALFORMED, malformed);
  for (const [what, body] of [[ENVOY_0, b.envoy0], [ENVOY_1, b.envoy1]] as const) {
    const r = fromBinary(CheckResponseSchema, await answer(what, ENVOY_PATH, body));
    expect(`${what} allows (CheckResponse status OK)`, (r.status?.code ?? 0) === 0 && r.httpResponse.case === "okResponse", r);
  }
  return { healthOkBytes, authResponse };
}

/**
 * The bare grpc-js server answers the very request Authenticate gets with the real server's answer,
 * and so does its minimal Authenticate for the bench's valid key (it denies the unknown key as
 * UNKNOWN and refuses a call without the internal credential). Its node:http twin answers
 * /healthz with our bytes and the minimal list with the real server's page for the same key (401
 * without it). It runs with npm start's node flags, as the server does.
 */
async function startCheckedBare(server: BenchServer, workers: string, answers: Answers, b: Bodies, fx: Fixture, extraFlags: string[] = []): Promise<BareServer> {
  const minimal = { authorization: INTERNAL.authorization, keyDigest: digestKey(fx.validKey) };
  const list = (base: string, authorization?: string) => fetch(`${base}/v1/api-keys`, { headers: authorization ? { authorization } : {} });
  const page = Buffer.from(await (await list(server.url, `Bearer ${fx.validKey}`)).arrayBuffer());
  const healthz = Buffer.from(await (await fetch(`${server.url}/healthz`)).arrayBuffer());
  const mongo = server.mongoDb !== null && process.env.MONGODB_URI ? { uri: process.env.MONGODB_URI, db: server.mongoDb, customerId: fx.customerA } : undefined;
  const bare = await startBare({ path: AUTHENTICATE_PATH, response: answers.authResponse, workers, minimal, page, ...(mongo ? { mongo } : {}), nodeFlags: [...startFlags(), ...extraFlags] });
  const at = `127.0.0.1:${bare.port}`;
  type Answer = Awaited<ReturnType<typeof rawUnary>>;
  const isValidAnswer = (r: Answer) => r.code === 0 && r.bytes.equals(Buffer.from(answers.authResponse));
  const isUnknownDenial = (r: Answer) => {
    if (r.code !== 0) return false;
    const m = fromBinary(AuthenticateResponseSchema, r.bytes);
    return !m.valid && m.denialReason === DenialReason.UNKNOWN;
  };
  const checks = [
    { what: "the bare grpc-js server", r: await rawUnary(at, AUTHENTICATE_PATH, unframe(b.auth0), INTERNAL), ok: isValidAnswer },
    { what: "the minimal Authenticate", r: await rawUnary(at, MINIMAL_PATH, unframe(b.auth0), INTERNAL), ok: isValidAnswer },
    { what: "the minimal Authenticate for an unknown key", r: await rawUnary(at, MINIMAL_PATH, unframe(b.unknown), INTERNAL), ok: isUnknownDenial },
    { what: "the minimal Authenticate without the internal credential", r: await rawUnary(at, MINIMAL_PATH, unframe(b.auth0), {}), ok: (r: Answer) => r.code === 16 },
  ];
  for (const { what, r, ok } of checks) {
    if (!ok(r)) {
      await bare.stop();
      throw new Error(`sanity check failed: ${what} answered ${JSON.stringify({ code: r.code, details: r.details, bytes: r.bytes.toString("hex") })}`);
    }
  }
  const http = `http://127.0.0.1:${bare.httpPort}`;
  const answer = async (res: Promise<Response>) => {
    const r = await res;
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
  };
  const httpChecks = [
    { what: "the bare GET /healthz", r: await answer(fetch(`${http}/healthz`)), want: { status: 200, body: healthz } },
    { what: "the minimal list", r: await answer(list(http, `Bearer ${fx.validKey}`)), want: { status: 200, body: page } },
    { what: "the minimal list for an unknown key", r: await answer(list(http, `Bearer ${fx.unknownKey}`)), want: { status: 401, body: Buffer.alloc(0) } },
  ];
  for (const { what, r, want } of httpChecks) {
    if (r.status !== want.status || !r.body.equals(want.body)) {
      await bare.stop();
      throw new Error(`sanity check failed: ${what} answered ${r.status} ${r.body.toString().slice(0, 200)}`);
    }
  }
  return bare;
}

// --- measuring one row ------------------------------------------------------------------------------

interface Ctx {
  server: BenchServer;
  fx: Fixture;
  b: Bodies;
  answers: Answers;
  bare: BareServer;
  store: StoreKind;
  section: string;
  s: Settings;
}

function assertAlive(ctx: Ctx): void {
  if (!ctx.server.alive()) throw new Error(`the server died during the bench:\n${ctx.server.output().slice(-4000)}`);
  if (!ctx.bare.alive()) throw new Error("the bare grpc-js server died during the bench");
}

type Run = (ctx: Ctx, c: number, seconds: number) => Promise<Measurement>;

/** A gRPC row driven by h2load: on GRPC_PORT, PORT, or the bare server. */
function h2(where: "grpc" | "http" | "bare", path: string, body: (b: Bodies) => Uint8Array, check: (ctx: Ctx) => H2loadCheck, authorized = true, rps?: (ctx: Ctx) => number): Run {
  return async (ctx, c, seconds) => {
    const port = where === "grpc" ? ctx.server.grpcPort : where === "http" ? ctx.server.port : ctx.bare.port;
    const pid = where === "bare" ? ctx.bare.pid : ctx.server.pid;
    const rate = rps?.(ctx);
    const m = await h2loadGrpc(
      pid,
      { target: `127.0.0.1:${port}`, path, body: body(ctx.b), ...(authorized ? { metadata: INTERNAL } : {}) },
      { concurrency: c, connections: ctx.s.connections, seconds, ...(rate ? { rps: rate } : {}) },
      check(ctx),
    );
    assertAlive(ctx);
    return m;
  };
}

const counted = (outcome: string) => (ctx: Ctx): H2loadCheck => ({ countOk: () => authOutcomes(ctx.server, outcome) });
const healthBytes = (port: "grpc" | "http") => (ctx: Ctx): H2loadCheck => ({ okBytes: ctx.answers.healthOkBytes[port] });
const bareBytes = (ctx: Ctx): H2loadCheck => ({ okBytes: 5 + ctx.answers.authResponse.length });

function ghzRun(port: "grpc" | "http", call: string, data: (fx: Fixture) => unknown, authorized = true, rps?: (ctx: Ctx) => number): Run {
  return async (ctx, c, seconds) => {
    const g: GhzCall = {
      target: `127.0.0.1:${port === "grpc" ? ctx.server.grpcPort : ctx.server.port}`,
      call,
      data: data(ctx.fx),
      ...(authorized ? { metadata: INTERNAL } : {}),
    };
    const m = await ghz(ctx.server.pid, g, { concurrency: c, connections: ctx.s.connections, seconds, ...(rps ? { rps: rps(ctx) } : {}) });
    assertAlive(ctx);
    return m;
  };
}

/** An HTTP/1.1 row driven by wrk, on the server or (its CPU measured instead) the bare server. */
function wrkRun(req: (ctx: Ctx) => Parameters<typeof wrk>[1], where: "server" | "bare" = "server"): Run {
  return async (ctx, c, seconds) => {
    const storePid = ctx.store === "mongo" ? mongoServerPid() : null;
    const m = await wrk(where === "bare" ? ctx.bare.pid : ctx.server.pid, req(ctx), { connections: c, seconds }, storePid);
    assertAlive(ctx);
    return m;
  };
}

const forwardAuth = (charge: string): Run => wrkRun((ctx) => forwardAuthRequest(ctx.server.authzPort, ctx.fx.validKey, INTERNAL_TOKEN, charge));

interface RowSpec {
  name: string;
  port: string;
  /** Name of the no-op row (same alternation; on the same port unless baselinePort) this row is compared with. */
  baseline?: string;
  baselinePort?: string;
  minRatio?: number;
  /** Compared with the bare grpc-js limit (same alternation) too; limitMin is the target. */
  vsLimit?: boolean;
  limitMin?: number;
  /** wrk rows: BENCH_HTTP_CONCURRENCY instead of BENCH_CONCURRENCY. */
  http?: boolean;
  run: Run;
  after?: (ctx: Ctx) => Promise<string>;
}

// --- the rows -----------------------------------------------------------------------------------------

/** GRPC_PORT, h2load: the bare limit, the no-op, and every row compared with them (alternated). */
function grpcSpecs(suffix = ""): RowSpec[] {
  const n = (name: string) => name + suffix;
  return [
    { name: n(LIMIT), port: BARE, run: h2("bare", AUTHENTICATE_PATH, (b) => b.auth0, bareBytes) },
    { name: n(NOOP_GRPC), port: GRPC_JS, vsLimit: true, run: h2("grpc", HEALTH_PATH, (b) => b.health, healthBytes("grpc"), false) },
    { name: n(NOOP_GRPC_MD), port: GRPC_JS, vsLimit: true, run: h2("grpc", HEALTH_PATH, (b) => b.health, healthBytes("grpc"), true) },
    { name: n(MINIMAL), port: BARE, baseline: n(NOOP_GRPC), baselinePort: GRPC_JS, vsLimit: true, run: h2("bare", MINIMAL_PATH, (b) => b.auth0, bareBytes) },
    { name: n(AUTH_VALID), port: GRPC_JS, baseline: n(NOOP_GRPC), minRatio: 0.8, vsLimit: true, limitMin: 0.65, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.auth0, counted("valid")) },
  ];
}

function grpcMoreSpecs(suffix = ""): RowSpec[] {
  const n = (name: string) => name + suffix;
  return [
    {
      name: n(AUTH_CHARGE),
      port: GRPC_JS,
      baseline: n(NOOP_GRPC),
      minRatio: 0.7,
      vsLimit: true,
      run: h2("grpc", AUTHENTICATE_PATH, (b) => b.auth1, counted("valid")),
      after: (ctx) => checkStillCharging(ctx.server, ctx.fx),
    },
    { name: n(AUTH_UNKNOWN), port: GRPC_JS, baseline: n(NOOP_GRPC), minRatio: 0.9, vsLimit: true, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.unknown, counted("unknown")) },
    { name: n(AUTH_MALFORMED), port: GRPC_JS, baseline: n(NOOP_GRPC), minRatio: 0.9, vsLimit: true, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.malformed, counted("malformed")) },
    // Envoy ext_authz: the CheckRequest Envoy sends for `GET /orders`; the gateway counts it as an authentication.
    { name: n(ENVOY_0), port: GRPC_JS, baseline: n(NOOP_GRPC), vsLimit: true, run: h2("grpc", ENVOY_PATH, (b) => b.envoy0, counted("valid")) },
    {
      name: n(ENVOY_1),
      port: GRPC_JS,
      baseline: n(NOOP_GRPC),
      vsLimit: true,
      run: h2("grpc", ENVOY_PATH, (b) => b.envoy1, counted("valid")),
      after: (ctx) => checkStillCharging(ctx.server, ctx.fx),
    },
  ];
}

/** ghz rows, once each after the h2load ones, for comparison (BENCH_GHZ=1); not judged. */
function ghzSpecs(): RowSpec[] {
  const g = GRPC_JS + GHZ;
  const auth = (data: (fx: Fixture) => unknown) => ghzRun("grpc", AUTHENTICATE_GHZ, data);
  return [
    { name: NOOP_GRPC, port: g, run: ghzRun("grpc", HEALTH_CHECK_GHZ, () => ({ service: "" }), false) },
    { name: AUTH_VALID, port: g, baseline: NOOP_GRPC, run: auth((fx) => ({ key: fx.validKey })) },
    { name: AUTH_CHARGE, port: g, baseline: NOOP_GRPC, run: auth((fx) => ({ key: fx.validKey, charge: 1 })) },
    { name: AUTH_UNKNOWN, port: g, baseline: NOOP_GRPC, run: auth((fx) => ({ key: fx.unknownKey })) },
    { name: AUTH_MALFORMED, port: g, baseline: NOOP_GRPC, run: auth((fx) => ({ key: fx.malformedKey })) },
    { name: ENVOY_0, port: g, baseline: NOOP_GRPC, run: ghzRun("grpc", ENVOY_CHECK_GHZ, (fx) => envoyInit(fx, "0")) },
  ];
}

function connectSpecs(ghzToo: boolean): { alternated: RowSpec[]; once: RowSpec[] } {
  const c = CONNECT + GHZ;
  return {
    alternated: [
      { name: NOOP_GRPC, port: CONNECT, run: h2("http", HEALTH_PATH, (b) => b.health, healthBytes("http"), false) },
      { name: AUTH_VALID, port: CONNECT, baseline: NOOP_GRPC, run: h2("http", AUTHENTICATE_PATH, (b) => b.auth0, counted("valid")) },
    ],
    once: ghzToo
      ? [
          { name: NOOP_GRPC, port: c, run: ghzRun("http", HEALTH_CHECK_GHZ, () => ({ service: "" }), false) },
          { name: AUTH_VALID, port: c, baseline: NOOP_GRPC, run: ghzRun("http", AUTHENTICATE_GHZ, (fx) => ({ key: fx.validKey })) },
        ]
      : [],
  };
}

const bareHttp = (ctx: Ctx) => `http://127.0.0.1:${ctx.bare.httpPort}`;

/** GET /v1/api-keys with the bench customer's key: our list, or the bare server's minimal list. */
const listRun = (where: "server" | "bare" = "server") =>
  wrkRun((ctx) => listRequest(where === "bare" ? bareHttp(ctx) : ctx.server.url, ctx.fx.validKey), where);

function httpSpecs(store: StoreKind): { alternated: RowSpec[]; once: RowSpec[] } {
  // The bare node:http rows: its /healthz, and the minimal list, a floor for this store's list.
  const bare: RowSpec[] = [
    { name: NOOP_HTTP, port: BARE_HTTP, http: true, run: wrkRun((ctx) => ({ url: `${bareHttp(ctx)}/healthz` }), "bare") },
    {
      name: MINIMAL_LIST[store],
      port: BARE_HTTP,
      http: true,
      baseline: NOOP_HTTP,
      baselinePort: HTTP1,
      run: listRun("bare"),
    },
  ];
  return {
    alternated: [
      { name: NOOP_HTTP, port: HTTP1, http: true, run: wrkRun((ctx) => ({ url: `${ctx.server.url}/healthz` })) },
      {
        name: REST_LIST,
        port: HTTP1,
        http: true,
        baseline: NOOP_HTTP,
        minRatio: LIST_TARGET[store],
        run: listRun(),
      },
      ...bare,
      // Forward-auth /check (nginx auth_request, Caddy forward_auth) against the same port's /healthz.
      { name: NOOP_HTTP, port: AUTHZ, http: true, run: wrkRun((ctx) => ({ url: `http://127.0.0.1:${ctx.server.authzPort}/healthz` })) },
      { name: "forward-auth /check valid, charge=0", port: AUTHZ, http: true, baseline: NOOP_HTTP, run: forwardAuth("0") },
      { name: "forward-auth /check valid, charge=1", port: AUTHZ, http: true, baseline: NOOP_HTTP, run: forwardAuth("1") },
    ],
    once: [
      {
        // Last, not alternated: it adds a key per request (to customer B, so A's list stays at 10).
        name: "POST /v1/api-keys",
        port: HTTP1,
        http: true,
        baseline: NOOP_HTTP,
        run: wrkRun((ctx) => ({ url: `${ctx.server.url}/v1/api-keys`, method: "POST", authorization: `Bearer ${ctx.fx.issuerKey}`, body: '{"name":"bench"}' })),
      },
    ],
  };
}

// --- alternating rounds -----------------------------------------------------------------------------

/**
 * For each concurrency level: every spec in turn, BENCH_ROUNDS times (warm-up before each spec's
 * first round only), so that a drift of the machine falls on the no-op row and the rows compared
 * with it alike. Every second round runs the specs in reverse order: in a fixed order the rows
 * listed last would always be measured furthest from the no-op row and the limit, which come
 * first, and a drift within the round would count against them alone. A row's req/s is the median
 * over the rounds (its other figures are those of the median round); its ratios are the medians of
 * the per-round ratios to the same round's no-op row and bare limit.
 */
async function alternate(ctx: Ctx, specs: RowSpec[]): Promise<Row[]> {
  const { s } = ctx;
  const rows: Row[] = [];
  if (specs.length === 0) return rows;
  const levels = specs[0]!.http ? s.httpConcurrency : s.concurrency;
  for (const c of levels) {
    const ms = new Map<RowSpec, Measurement[]>();
    const notes = new Map<RowSpec, string>();
    for (let round = 0; round < s.rounds; round++) {
      for (const spec of round % 2 === 0 ? specs : [...specs].reverse()) {
        if (round === 0 && s.warmupSeconds > 0) await spec.run(ctx, c, s.warmupSeconds);
        const m = await spec.run(ctx, c, s.seconds);
        const problem = spec.after ? await spec.after(ctx) : "";
        if (problem && !notes.has(spec)) notes.set(spec, problem);
        ms.set(spec, [...(ms.get(spec) ?? []), m]);
        if (s.rounds > 1) progress(`${ctx.section} · round ${round + 1}/${s.rounds}`, { name: spec.name, port: spec.port, concurrency: c, m });
      }
    }
    const limitSpec = specs.find((x) => x.name.startsWith(LIMIT));
    for (const spec of specs) {
      const runs = ms.get(spec)!;
      const byRps = runs.map((m, i) => [m.rps, i] as const).sort((a, b) => a[0] - b[0]);
      const mid = runs[byRps[Math.floor((byRps.length - 1) / 2)]![1]]!;
      const errors = runs.reduce((a, m) => a + m.errors, 0);
      const m: Measurement = { ...mid, rps: median(runs.map((x) => x.rps)), errors, errorSample: runs.find((x) => x.errorSample)?.errorSample ?? "" };
      const row: Row = { name: spec.name, port: spec.port, concurrency: c, m, roundsRps: runs.map((x) => x.rps) };
      const perRound = (other: RowSpec | undefined) => (other ? median(runs.map((x, i) => x.rps / ms.get(other)![i]!.rps)) : undefined);
      const base = spec.baseline ? specs.find((x) => x.name === spec.baseline && x.port === (spec.baselinePort ?? spec.port)) : undefined;
      if (base) Object.assign(row, { baseline: base.name, ratio: perRound(base) });
      if (spec.vsLimit && limitSpec) row.limitRatio = perRound(limitSpec);
      const mdSpec = base?.name.startsWith(NOOP_GRPC) ? specs.find((x) => x.name === base.name.replace(NOOP_GRPC, NOOP_GRPC_MD) && x.port === base.port) : undefined;
      if (mdSpec) row.mdRatio = perRound(mdSpec);
      const judged = [
        ...(spec.minRatio !== undefined && row.ratio !== undefined ? [[`≥ ${spec.minRatio}×`, row.ratio >= spec.minRatio] as const] : []),
        ...(spec.limitMin !== undefined && row.limitRatio !== undefined ? [[`≥ ${spec.limitMin}× of the limit`, row.limitRatio >= spec.limitMin] as const] : []),
      ];
      if (judged.length) {
        row.target = judged.map(([t]) => t).join(", ");
        row.pass = judged.every(([, ok]) => ok) && errors === 0;
      }
      const note = notes.get(spec);
      if (note) Object.assign(row, { note, pass: false });
      rows.push(row);
      progress(ctx.section, row);
    }
  }
  return rows;
}

/** Rows measured once each (after the alternation), compared with a row measured before. */
async function once(ctx: Ctx, specs: RowSpec[], before: Row[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const spec of specs) {
    for (const c of spec.http ? ctx.s.httpConcurrency : ctx.s.concurrency) {
      if (ctx.s.warmupSeconds > 0) await spec.run(ctx, c, ctx.s.warmupSeconds);
      const m = await spec.run(ctx, c, ctx.s.seconds);
      let row: Row = { name: spec.name, port: spec.port, concurrency: c, m };
      const base = [...before, ...rows].find((r) => r.name === spec.baseline && r.port === spec.port && r.concurrency === c && !r.baseline);
      if (base) {
        row = { ...row, baseline: base.name, ratio: m.rps / base.m.rps };
        if (spec.minRatio !== undefined) row = { ...row, target: `≥ ${spec.minRatio}×`, pass: row.ratio! >= spec.minRatio && m.errors === 0 };
      }
      const problem = spec.after ? await spec.after(ctx) : "";
      if (problem) Object.assign(row, { note: problem, pass: false });
      rows.push(row);
      progress(ctx.section, row);
    }
  }
  return rows;
}

/**
 * p99 of Authenticate(valid, charge=0) on GRPC_PORT, open loop (h2load --rps) at 80 % of its best
 * req/s; then the bare grpc-js server at the same rate (the transport's own tail here), and with
 * BENCH_GHZ=1 ghz --rps at the same rate (a Go ticker's pacing, for comparison). Each h2load row's
 * note says how h2load's requests went out (arrivalBursts).
 */
async function at80(ctx: Ctx, rows: Row[], suffix = ""): Promise<Row[]> {
  const best = rows.filter((r) => r.name === AUTH_VALID + suffix && r.port === GRPC_JS).sort((a, b) => b.m.rps - a.m.rps)[0];
  if (!best) return [];
  const rate = 0.8 * best.m.rps;
  const perClient = Math.max(1, Math.round(rate / Math.min(ctx.s.connections, best.concurrency)));
  const m = await h2("grpc", AUTHENTICATE_PATH, (b) => b.auth0, counted("valid"), true, () => rate)(ctx, best.concurrency, ctx.s.seconds);
  const sustained = m.rps >= 0.95 * rate;
  const row: Row = {
    name: AT_80 + suffix,
    port: GRPC_JS,
    concurrency: best.concurrency,
    m,
    baseline: "its best",
    ratio: m.rps / best.m.rps,
    target: "p99 < 5 ms",
    pass: m.p99Ms < 5 && m.errors === 0 && sustained,
    note: `h2load --rps ${fmtInt(perClient)} × ${Math.min(ctx.s.connections, best.concurrency)} connections = ${fmtInt(rate)} req/s${sustained ? "" : ", not sustained"}${burstNote(m)}`,
  };
  progress(ctx.section, row);
  // The same open-loop rate on the bare grpc-js server: the tail the transport has on its own here.
  const bm = await h2("bare", AUTHENTICATE_PATH, (b) => b.auth0, bareBytes, true, () => rate)(ctx, best.concurrency, ctx.s.seconds);
  const bareRow: Row = {
    name: `${LIMIT}, open loop at the same rate${suffix}`,
    port: BARE,
    concurrency: best.concurrency,
    m: bm,
    note: `the same h2load --rps as the row above: the transport's own p99 on this machine (no target)${burstNote(bm)}`,
  };
  progress(ctx.section, bareRow);
  const out = [row, bareRow];
  if (ctx.s.ghz) {
    const gm = await ghzRun("grpc", AUTHENTICATE_GHZ, (fx) => ({ key: fx.validKey }), true, () => rate)(ctx, best.concurrency, ctx.s.seconds);
    const ghzRow: Row = { name: `${AT_80}${suffix}, ghz --rps`, port: GRPC_JS + GHZ, concurrency: best.concurrency, m: gm, note: `ghz --rps ${fmtInt(rate)}: the same rate, paced by ghz (no target; its CPU is the load tool's)` };
    progress(ctx.section, ghzRow);
    out.push(ghzRow);
  }
  return out;
}

/** How h2load's open-loop requests went out (its rate timer fires at most every 10 ms). */
function burstNote(m: Measurement): string {
  const b = m.bursts;
  return b ? `; h2load sent its requests in bursts (its rate timer fires at most every 10 ms): median ${fmtInt(b.medianSize)} requests every ${fmtMs(b.medianSpacingMs)} ms` : "";
}

// --- passes -----------------------------------------------------------------------------------------

async function withServers<T>(store: StoreKind, workers: string, s: Settings, fn: (ctx: Ctx) => Promise<T>): Promise<{ result: T; problems: string[] }> {
  const section = `${STORE_LABEL[store]}, WORKERS=${workers}`;
  process.stderr.write(`\n${section}\n`);
  const server = await startServer({ store, workers, ...(process.env.MONGODB_URI ? { mongoUri: process.env.MONGODB_URI } : {}) });
  let bare: BareServer | null = null;
  try {
    const fx = await provision(server);
    const b = bodies(fx);
    const answers = await checkGrpcAnswers(server, b);
    bare = await startCheckedBare(server, workers, answers, b, fx);
    const result = await fn({ server, fx, b, answers, bare, store, section, s });
    await bare.stop();
    const code = await server.stop();
    const problems = server.problems();
    if (code !== 0) problems.push(`server exited with ${code} on SIGTERM`);
    return { result, problems };
  } finally {
    await bare?.stop();
    await server.stop();
    await server.dispose();
  }
}

interface Pass {
  store: StoreKind;
  rows: Row[];
  /** The WORKERS=1 gRPC rows with the server pinned to CPU 0 and the load tool to the others. */
  pinnedRows: Row[];
  workerRows: Row[];
  problems: string[];
}

/** The WORKERS=1 server: gRPC on GRPC_PORT (with the bare limit) and PORT, p99 at 80 %, HTTP/1.1. */
async function mainRows(store: StoreKind, s: Settings): Promise<{ rows: Row[]; problems: string[] }> {
  const groups = ["grpc", "connect", "http"].filter((g) => s.only.includes(g));
  if (groups.length === 0) return { rows: [], problems: [] };
  const { result: rows, problems } = await withServers(store, "1", s, async (ctx) => {
    const rows: Row[] = [];
    if (s.only.includes("grpc")) {
      rows.push(...(await alternate(ctx, [...grpcSpecs(), ...grpcMoreSpecs()])));
      if (s.ghz) rows.push(...(await once(ctx, ghzSpecs(), rows)));
      rows.push(...(await at80(ctx, rows)));
    }
    if (s.only.includes("connect")) {
      const c = connectSpecs(s.ghz);
      rows.push(...(await alternate(ctx, c.alternated)));
      rows.push(...(await once(ctx, c.once, rows)));
    }
    if (s.only.includes("http")) {
      const h = httpSpecs(store);
      rows.push(...(await alternate(ctx, h.alternated)));
      rows.push(...(await once(ctx, h.once, rows)));
    }
    return rows;
  });
  return { rows, problems };
}

/**
 * WORKERS=auto (and WORKERS=1 too when the grpc group did not run): the bare limit (node:cluster
 * with as many workers), Health/Check and Authenticate valid charge=0, alternated, each on a fresh
 * server; with BENCH_GHZ=1 a ghz Authenticate row too.
 */
async function workerRows(store: StoreKind, s: Settings): Promise<{ rows: Row[]; problems: string[] }> {
  const rows: Row[] = [];
  const problems: string[] = [];
  if (!s.only.includes("workers")) return { rows, problems };
  for (const workers of s.only.includes("grpc") ? [s.workersAuto] : ["1", s.workersAuto]) {
    const { result, problems: p } = await withServers(store, workers, s, async (ctx) => {
      const suffix = `, WORKERS=${workers}`;
      const r = await alternate(ctx, grpcSpecs(suffix));
      if (s.ghz) {
        const g = GRPC_JS + GHZ;
        r.push(...(await once(ctx, [{ name: AUTH_VALID + suffix, port: g, run: ghzRun("grpc", AUTHENTICATE_GHZ, (fx) => ({ key: fx.validKey })) }], r)));
      }
      for (const row of r) {
        if (row.m.serverProcCpuPct.length > 1) row.note = `CPU per process ${row.m.serverProcCpuPct.map((x) => Math.round(x)).join(" + ")} %`;
      }
      return r;
    });
    rows.push(...result);
    problems.push(...p.map((l) => `WORKERS=${workers}: ${l}`));
  }
  return { rows, problems };
}

/**
 * The WORKERS=1 gRPC rows again on a fresh server, pinned: the server's and the bare server's
 * process trees on CPU 0, the load tool on the other CPUs (taskset), so the server keeps its core
 * as a one-CPU deployment would (its GC threads share that core too). Unpinned, the scheduler
 * moves the server, its GC threads and the load tool across both cores from moment to moment.
 * BENCH_PIN=0, or a one-CPU machine, leaves this section out.
 */
async function pinnedRows(store: StoreKind, s: Settings): Promise<{ rows: Row[]; problems: string[] }> {
  if (!s.only.includes("grpc") || process.env.BENCH_PIN === "0") return { rows: [], problems: [] };
  const { result: rows, problems } = await withServers(store, "1", s, async (ctx) => {
    if (!pinApart([ctx.server.pid, ctx.bare.pid])) {
      process.stderr.write("bench: could not pin the servers (taskset failed): the pinned section is left out\n");
      return [];
    }
    try {
      const r = await alternate(ctx, [...grpcSpecs(PINNED), ...grpcMoreSpecs(PINNED)]);
      r.push(...(await at80(ctx, r, PINNED)));
      return r;
    } finally {
      unpinLoad();
    }
  });
  return { rows, problems: problems.map((l) => `pinned: ${l}`) };
}

async function runPass(store: StoreKind, s: Settings): Promise<Pass> {
  const main = await mainRows(store, s);
  const pinned = await pinnedRows(store, s);
  const workers = await workerRows(store, s);
  return { store, rows: main.rows, pinnedRows: pinned.rows, workerRows: workers.rows, problems: [...main.problems, ...pinned.problems, ...workers.problems] };
}

// --- output -----------------------------------------------------------------------------------------

function targetsSummary(pass: Pass, s: Settings): string[] {
  const lines: string[] = [];
  const all = [...pass.rows, ...pass.pinnedRows, ...pass.workerRows];
  const find = (name: string, port = GRPC_JS) => all.filter((r) => r.name === name && r.port === port);
  const item = (label: string, rows: Row[], f: (r: Row) => string) => rows.length && lines.push(`- ${label}: ${rows.map((r) => `${f(r)} at c=${r.concurrency}`).join(", ")}`);
  const md = (r: Row) => (r.mdRatio !== undefined ? ` (${fmtRatio(r.mdRatio)} of Health/Check with the same metadata)` : "");
  const both = (r: Row) => `${fmtRatio(r.ratio)} of Health/Check${md(r)}, ${fmtRatio(r.limitRatio)} of the limit ${mark(r.pass)}`;
  const ratio = (r: Row) => `${fmtRatio(r.ratio)}${md(r)} ${mark(r.pass)}`;
  // Unpinned WORKERS=1 (the main rows), the same rows pinned, and WORKERS=auto (valid, Health/Check, minimal only).
  const variants: [label: string, suffix: string][] = [
    ["WORKERS=1", pass.rows.some((r) => r.name === AUTH_VALID) ? "" : ", WORKERS=1"],
    ["WORKERS=1 pinned", PINNED],
    [`WORKERS=${s.workersAuto}`, `, WORKERS=${s.workersAuto}`],
  ];
  for (const [label, suffix] of variants) {
    item(`${label}: Authenticate valid charge=0 ≥ 0.8× Health/Check (GRPC_PORT) and ≥ 0.65× the bare grpc-js limit`, find(AUTH_VALID + suffix), both);
    item(`${label}: Health/Check over the bare grpc-js limit (no target; issue 17 measured 0.78×)`, find(NOOP_GRPC + suffix), (r) => fmtRatio(r.limitRatio));
    const valid = find(AUTH_VALID + suffix)[0];
    item(`${label}: the minimal Authenticate on the bare server (no target: the least a correct Authenticate does on this transport)`, find(MINIMAL + suffix, BARE), (r) =>
      `${fmtRatio(r.ratio)} of Health/Check, ${fmtRatio(r.limitRatio)} of the limit${valid ? `; Authenticate valid charge=0 does ${fmtRatio(roundRatio(valid, r))} of its req/s` : ""}`);
    item(`${label}: Authenticate valid charge=1 ≥ 0.7×`, find(AUTH_CHARGE + suffix), ratio);
    item(`${label}: Authenticate unknown ≥ 0.9×`, find(AUTH_UNKNOWN + suffix), ratio);
    item(`${label}: Authenticate malformed ≥ 0.9×`, find(AUTH_MALFORMED + suffix), ratio);
    const p80 = find(AT_80 + suffix)[0];
    const bare80 = find(`${LIMIT}, open loop at the same rate${suffix}`, BARE)[0];
    const bareTail = bare80 ? `; the bare grpc-js server at the same rate: p99 ${fmtMs(bare80.m.p99Ms)} ms at ${fmtInt(bare80.m.rps)} req/s` : "";
    const b80 = p80?.m.bursts;
    const burstTail = b80 ? `; h2load sent bursts of ${fmtInt(b80.medianSize)} requests (median) every ${fmtMs(b80.medianSpacingMs)} ms` : "";
    if (p80) lines.push(`- ${label}: p99 < 5 ms at 80 % of the best Authenticate rate (open loop): p99 ${fmtMs(p80.m.p99Ms)} ms at ${fmtInt(p80.m.rps)} req/s (c=${p80.concurrency}) ${mark(p80.pass)}${bareTail}${burstTail}`);
  }
  // WORKERS scaling (issue 6): WORKERS=auto's Authenticate over WORKERS=1's, same tool and c.
  for (const [name, target] of [[AUTH_VALID, 1.6], [NOOP_GRPC, undefined], [LIMIT, undefined]] as const) {
    const auto = all.find((r) => r.name === `${name}, WORKERS=${s.workersAuto}` && (r.port === GRPC_JS || r.port === BARE));
    const base = all.find((r) => (r.name === name || r.name === `${name}, WORKERS=1`) && (r.port === GRPC_JS || r.port === BARE));
    if (auto && base) {
      const x = auto.m.rps / base.m.rps;
      const judged = target !== undefined ? ` (target ≥ ${target}×) ${mark(x >= target && auto.m.errors === 0)}` : " (no target)";
      lines.push(`- WORKERS=${s.workersAuto} over WORKERS=1, ${name}: ${fmtRatio(x)}${judged}`);
    }
  }
  // The MongoDB pass with the database server on this machine: what it spent on each list.
  const storeCpu = (r: Row) => (r.m.store ? `; the MongoDB server's own CPU ${fmtInt(r.m.store.cpuPct)} %, ${fmtInt(r.m.store.cpuUsPerReq)} µs a request` : "");
  item(`REST list ≥ ${LIST_TARGET[pass.store]}× GET /healthz`, find(REST_LIST, HTTP1), (r) => `${ratio(r)}${storeCpu(r)}`);
  const list = find(REST_LIST, HTTP1)[0];
  const bareHealthz = find(NOOP_HTTP, BARE_HTTP)[0];
  item(`REST list: the minimal list on the bare node:http server (no target: the least a correct list does on the ${pass.store === "mongo" ? "MongoDB" : "embedded"} store)`, find(MINIMAL_LIST[pass.store], BARE_HTTP), (r) =>
    `${fmtRatio(r.ratio)} of GET /healthz${bareHealthz ? `, ${fmtRatio(roundRatio(r, bareHealthz))} of the bare server's GET /healthz` : ""}${storeCpu(r)}${list ? `; GET /v1/api-keys does ${fmtRatio(roundRatio(list, r))} of its req/s` : ""}`);
  if (bareHealthz) item("GET /healthz over the bare node:http server's (no target)", find(NOOP_HTTP, HTTP1), (r) => fmtRatio(roundRatio(r, bareHealthz)));
  item("Envoy Check valid charge=0 over Health/Check (issue 15, no target)", find(ENVOY_0), (r) => fmtRatio(r.ratio));
  item("Envoy Check valid charge=1 over Health/Check", find(ENVOY_1), (r) => fmtRatio(r.ratio));
  item("forward-auth /check charge=0 over AUTHZ_PORT's GET /healthz (issue 15, no target)", find("forward-auth /check valid, charge=0", AUTHZ), (r) => fmtRatio(r.ratio));
  item("forward-auth /check charge=1 over AUTHZ_PORT's GET /healthz", find("forward-auth /check valid, charge=1", AUTHZ), (r) => fmtRatio(r.ratio));
  lines.push("- no regression of any other row by more than 5 %: not judged by one run (it needs main before and after; see bench/README.md)");
  return lines;
}

/** MongoDB's Authenticate rows over the embedded store's (target: within 10 %, i.e. ≥ 0.9×). */
function storeComparison(passes: Pass[]): string[] {
  const emb = passes.find((p) => p.store === "embedded");
  const mongo = passes.find((p) => p.store === "mongo");
  if (!emb || !mongo) return [];
  const lines: string[] = [];
  const rows = (p: Pass) => [...p.rows, ...p.pinnedRows, ...p.workerRows].filter((r) => r.name.startsWith("Authenticate") || r.name.startsWith("Envoy"));
  for (const m of rows(mongo)) {
    const e = rows(emb).find((r) => r.name === m.name && r.port === m.port && r.concurrency === m.concurrency);
    if (!e) continue;
    const x = m.m.rps / e.m.rps;
    const judged = m.port === GRPC_JS && !m.name.startsWith("Envoy") ? ` ${mark(x >= 0.9 && m.m.errors === 0)}` : "";
    const ratios = m.ratio !== undefined && e.ratio !== undefined ? `; ratio to its no-op ${fmtRatio(m.ratio)} vs ${fmtRatio(e.ratio)}` : "";
    lines.push(`- ${m.name} (${m.port}, c=${m.concurrency}): ${fmtInt(m.m.rps)} vs ${fmtInt(e.m.rps)} req/s = ${fmtRatio(x)}${ratios}${judged}`);
  }
  return lines.length ? ["", "## MongoDB vs embedded (target: Authenticate rows within 10 %, ≥ 0.9×)", "", ...lines] : [];
}

function render(passes: Pass[], s: Settings, header: string[], loadStart: number[]): string {
  const out: string[] = [
    "# zpk benchmark results",
    "",
    "Written by the latest full-length `npm run bench` (bench/run.ts); bench/README.md says what each row",
    "measures and how to read the ratios. Figures from a machine that was doing other work are noise.",
    "",
    `- command: \`${commandLine()}\``,
    ...header,
    loadLine(loadStart, loadavg()),
    `- each row: ${s.rounds} alternating round(s) of ${s.seconds} s measured (${s.warmupSeconds} s warm-up before a row's first round); ` +
      `req/s is the median over the rounds, ratios the median of the per-round ratios`,
    `- gRPC rows: h2load, ${s.connections} connections × c/${s.connections} streams each, c = ${s.concurrency.join(", ")}` +
      `${s.ghz ? "; ghz rows (BENCH_GHZ=1) once each, same c and connections" : ""}; HTTP/1.1 rows: wrk, ${process.env.BENCH_WRK_THREADS ?? 2} threads, c = ${s.httpConcurrency.join(", ")} keep-alive connections`,
    `- server: \`node ${startFlags().join(" ")} --import tsx src/main.ts\` (npm start's flags), HOST=127.0.0.1, LOG_LEVEL=warn, RATE_LIMIT_CAPACITY=RATE_LIMIT_REFILL_PER_SEC=${HUGE_LIMIT} ` +
      `(and SetRateLimit to the same for the bench customers), WORKERS=1 except in the workers table; ` +
      "the bare grpc-js limit and the minimal Authenticate: bench/lib/bare-grpc-server.ts with the same node flags, one process (node:cluster with the same worker count in the workers table); the bare GET /healthz and the minimal list: bench/lib/bare-http.ts in that process, on a port of its own",
    "- server CPU % is of one core (200 % = both cores of a 2-core machine), summed over the server's (or the bare server's) process tree; " +
      "RSS is the peak of the tree's summed VmRSS during the row; load tool CPU % is the tool's own (h2load, ghz or wrk)",
  ];
  for (const p of passes) {
    out.push("", `## ${STORE_LABEL[p.store]}`, "", "Targets (issue 17; WORKERS scaling from issue 6):", "", ...targetsSummary(p, s));
    if (p.rows.length) out.push("", rowsTable(p.rows));
    if (p.pinnedRows.length) out.push("", "WORKERS=1 pinned (a fresh server; it and the bare server on CPU 0, the load tool on the other CPUs):", "", rowsTable(p.pinnedRows));
    if (p.workerRows.length) out.push("", `WORKERS=${s.workersAuto} (a fresh server, and the bare limit under node:cluster with as many workers):`, "", rowsTable(p.workerRows));
    if (p.problems.length) out.push("", "Server warnings/errors during the pass:", "", ...p.problems.slice(0, 20).map((l) => `    ${l.slice(0, 300)}`));
  }
  out.push(...storeComparison(passes));
  return out.join("\n") + "\n";
}

// --- profile mode -----------------------------------------------------------------------------------

interface ProfileRow {
  name: string;
  /** Which process is profiled: the server, or the bare grpc-js server. */
  where: "server" | "bare";
  port: string;
  /** HTTP/1.1 rows (wrk) take BENCH_HTTP_CONCURRENCY's first level, gRPC rows BENCH_CONCURRENCY's. */
  http?: boolean;
  run: Run;
}

const PROFILE_ROWS: Record<string, ProfileRow> = {
  auth: { name: AUTH_VALID, where: "server", port: GRPC_JS, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.auth0, counted("valid")) },
  charge1: { name: AUTH_CHARGE, where: "server", port: GRPC_JS, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.auth1, counted("valid")) },
  unknown: { name: AUTH_UNKNOWN, where: "server", port: GRPC_JS, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.unknown, counted("unknown")) },
  malformed: { name: AUTH_MALFORMED, where: "server", port: GRPC_JS, run: h2("grpc", AUTHENTICATE_PATH, (b) => b.malformed, counted("malformed")) },
  envoy: { name: ENVOY_0, where: "server", port: GRPC_JS, run: h2("grpc", ENVOY_PATH, (b) => b.envoy0, counted("valid")) },
  health: { name: NOOP_GRPC, where: "server", port: GRPC_JS, run: h2("grpc", HEALTH_PATH, (b) => b.health, healthBytes("grpc"), false) },
  bare: { name: LIMIT, where: "bare", port: BARE, run: h2("bare", AUTHENTICATE_PATH, (b) => b.auth0, bareBytes) },
  minimal: { name: MINIMAL, where: "bare", port: BARE, run: h2("bare", MINIMAL_PATH, (b) => b.auth0, bareBytes) },
  list: { name: REST_LIST, where: "server", port: HTTP1, http: true, run: listRun() },
  healthz: { name: NOOP_HTTP, where: "server", port: HTTP1, http: true, run: wrkRun((ctx) => ({ url: `${ctx.server.url}/healthz` })) },
  minimallist: { name: "minimal list on the bare server (bench/lib/bare-http.ts)", where: "bare", port: BARE_HTTP, http: true, run: listRun("bare") },
};

/**
 * BENCH_CPU_PROF=dir: one WORKERS=1 server (or, for BENCH_PROFILE_ROW=bare, the bare grpc-js
 * server) runs with `node --cpu-prof --cpu-prof-dir=dir`; one row (BENCH_PROFILE_ROW, default
 * auth = Authenticate valid charge=0) is driven by its load tool for the warm-up and BENCH_SECONDS,
 * with the servers on CPU 0 and the tool on the others (pinApart; BENCH_PIN=0 leaves them
 * unpinned); the process is stopped (the profile is written at its exit) and
 * bench/profile-summary.ts prints it.
 */
async function profileRun(s: Settings): Promise<void> {
  const spec = PROFILE_ROWS[s.profileRow];
  if (!spec) throw new Error(`BENCH_PROFILE_ROW must be one of ${Object.keys(PROFILE_ROWS).join(", ")} (got ${s.profileRow})`);
  const dir = resolve(s.cpuProf);
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const profFlags = ["--cpu-prof", `--cpu-prof-dir=${dir}`];
  // server.ts adds --cpu-prof to the server when BENCH_CPU_PROF is set: not when the bare server is profiled.
  if (spec.where === "bare") delete process.env.BENCH_CPU_PROF;
  // The profile starts with its process: the summary keeps the samples of the measured run only.
  let spawned = performance.now();
  let window: [number, number] = [0, Infinity];
  let rps = 0;
  const server = await startServer({ store: s.stores[0]!, workers: "1", ...(process.env.MONGODB_URI ? { mongoUri: process.env.MONGODB_URI } : {}) });
  let bare: BareServer | null = null;
  try {
    const fx = await provision(server);
    const b = bodies(fx);
    const answers = await checkGrpcAnswers(server, b);
    if (spec.where === "bare") spawned = performance.now();
    bare = await startCheckedBare(server, "1", answers, b, fx, spec.where === "bare" ? profFlags : []);
    const ctx: Ctx = { server, fx, b, answers, bare, store: s.stores[0]!, section: `profile (${spec.name})`, s };
    const c = spec.http ? s.httpConcurrency[0]! : s.concurrency[0]!;
    const run = spec.run;
    const pinned = process.env.BENCH_PIN !== "0" && pinApart([server.pid, bare.pid]);
    process.stderr.write(pinned ? "bench: servers pinned to CPU 0, the load tool to the others\n" : "bench: not pinned\n");
    if (s.warmupSeconds > 0) await run(ctx, c, s.warmupSeconds);
    const from = performance.now();
    const m = await run(ctx, c, s.seconds);
    // A little inside the run: h2load's connection setup and the metrics scrapes at its ends.
    window = [(from - spawned) / 1000 + 0.3, (performance.now() - spawned) / 1000 - 0.3];
    rps = m.rps;
    progress(ctx.section, { name: spec.name, port: spec.port, concurrency: c, m });
  } finally {
    await bare?.stop();
    await server.stop();
    await server.dispose();
  }
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (others: tsx's loader thread).
  const profiles = readdirSync(dir)
    .filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= started);
  if (profiles.length === 0) throw new Error(`no .cpuprofile written to ${dir}`);
  for (const f of profiles) {
    const [fromSeconds, toSeconds] = window;
    // The row's mean rate over the window: the requests its µs per request are of.
    const requests = Math.round(rps * (toSeconds - fromSeconds));
    process.stdout.write(`\n${f} (the measured ${s.seconds} s: --from=${fromSeconds.toFixed(1)} --to=${toSeconds.toFixed(1)} --requests=${requests})\n\n`);
    process.stdout.write(`${summarizeProfile(f, { fromSeconds, toSeconds, requests })}\n`);
  }
  process.stderr.write("\nbench: profile mode (BENCH_CPU_PROF): nothing else measured, bench/RESULTS.md left as it was\n");
}

// --- main -------------------------------------------------------------------------------------------

/** bench/RESULTS.md is the record of a full-length run: not overwritten by a subset or a short run. */
function resultsFile(s: Settings): { file: string | null; why: string } {
  if (s.resultsFile) return { file: resolve(s.resultsFile), why: "" };
  const short: string[] = [];
  if (process.env.BENCH_ONLY) short.push("BENCH_ONLY is set");
  if (s.seconds < 5) short.push("BENCH_SECONDS < 5");
  if (s.rounds < 3) short.push("BENCH_ROUNDS < 3");
  if (s.warmupSeconds < 1) short.push("BENCH_WARMUP_SECONDS < 1");
  if (short.length) return { file: null, why: `${short.join(", ")}, so bench/RESULTS.md (the full table) is left as it was (BENCH_RESULTS_FILE=path writes this one)` };
  return { file: join(REPO, "bench/RESULTS.md"), why: "" };
}

async function main(): Promise<void> {
  installCleanup();
  if (process.argv[2] === "flood") return flood();
  if (process.argv[2] === "in-process") return inProcess();
  if (process.argv[2] === "mongo-driver") return mongoDriver();
  if (process.argv[2] === "ab") return ab(process.argv[3]);
  if (process.argv[2] !== undefined) throw new Error(`unknown argument ${process.argv[2]}: use \`npm run bench\`, \`npm run bench -- flood\`, \`npm run bench -- in-process\`, \`npm run bench -- mongo-driver\` or \`npm run bench -- ab <ref>\``);
  const s = settings();
  findTool("h2load");
  if (s.cpuProf) return profileRun(s);
  findTool("wrk");
  if (s.ghz) findTool("ghz");
  const loadStart = loadavg();
  const header = machine(s.ghz ? ["h2load", "ghz", "wrk"] : ["h2load", "wrk"]);
  const started = performance.now();
  process.stderr.write(`bench: ${commandLine()}\n${header.join("\n")}\n`);
  const passes: Pass[] = [];
  for (const store of s.stores) passes.push(await runPass(store, s));
  const text = render(passes, s, header, loadStart);
  process.stdout.write(`\n${text}`);
  process.stderr.write(`\nbench: ${Math.round((performance.now() - started) / 1000)} s\n`);
  const { file, why } = resultsFile(s);
  if (!file) {
    process.stderr.write(`bench: ${why}\n`);
    return;
  }
  writeFileSync(file, text);
  process.stderr.write(`bench: written to ${file}\n`);
}

main().then(
  () => {
    cleanup();
    process.exit(process.exitCode ?? 0);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanup();
    process.exit(1);
  },
);
