import type { ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { MongoClient } from "mongodb";
import { checksum } from "../../src/domain/key-format.js";
import { freePort, tcpOpen, withFreshPorts } from "../../test/helpers/loopback.js";
import { metricValue, scrapeMetrics } from "../../test/helpers/metrics.js";
import { killTree, processTree, removeDir, sleep, spawnTracked, tempDir } from "./proc.js";

/** The real server, started as `npm start` starts it, on loopback ports the bench picked. */

export const REPO = new URL("../..", import.meta.url).pathname;
export const INTERNAL_TOKEN = `bench-internal-${randomBytes(12).toString("hex")}`;
/** The most SetRateLimit / RATE_LIMIT_* accept: the bench measures the path, not 429s. */
export const HUGE_LIMIT = 1_000_000;

export type StoreKind = "embedded" | "mongo";

export interface BenchServer {
  store: StoreKind;
  workers: string;
  url: string;
  port: number;
  grpcPort: number;
  /** Forward-auth /check (AUTHZ_PORT). */
  authzPort: number;
  /** `/metrics` (with WORKERS > 1, the primary's sum over the workers). */
  metricsPort: number;
  pid: number;
  dataDir: string;
  mongoDb: string | null;
  output(): string;
  /** Lines the server logged at warn or above (the bench runs it with LOG_LEVEL=warn). */
  problems(): string[];
  alive(): boolean;
  /** SIGTERM (drain + flush), SIGKILL of the whole tree if it takes longer than 30 s. */
  stop(): Promise<number | null>;
  /** Audit rows and the sum of their `count` (every failure counted once), read from the store. */
  auditStats(): Promise<{ rows: number; counted: number }>;
  /** Removes the data directory / drops the MongoDB database. */
  dispose(): Promise<void>;
}

export interface StartOptions {
  store: StoreKind;
  workers: string;
  mongoUri?: string;
  env?: Record<string, string>;
}

/**
 * Node flags for the server: BENCH_NODE_FLAGS (space-separated, e.g. GC settings to compare), and
 * BENCH_CPU_PROF=dir adds --cpu-prof (profiles written on exit).
 */
function nodeFlags(): string[] {
  const flags: string[] = [...startFlags(), ...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean)];
  if (process.env.BENCH_CPU_PROF) flags.push("--cpu-prof", `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROF)}`);
  return flags;
}

/** The node flags of `npm start` (package.json), so the bench runs the server as users do. */
export function startFlags(): string[] {
  const start: string = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).scripts.start;
  const m = /^node ((?:--[\w-]+(?:=\S+)? )*)--import tsx src\/main\.ts$/.exec(start);
  if (!m) throw new Error(`package.json's start script is not \`node [flags] --import tsx src/main.ts\`: ${start}`);
  return m[1]!.split(" ").filter(Boolean);
}

export function startServer(opts: StartOptions): Promise<BenchServer> {
  return withFreshPorts(() => startOnce(opts));
}

async function startOnce(opts: StartOptions): Promise<BenchServer> {
  const dataDir = tempDir("zpk-bench-data-");
  const mongoDb = opts.store === "mongo" ? `zpk_bench_${randomBytes(4).toString("hex")}` : null;
  const [port, grpcPort, metricsPort, authzPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const inherited = { ...process.env };
  delete inherited.MONGODB_URI;
  delete inherited.MONGODB_DB;
  const env: Record<string, string | undefined> = {
    ...inherited,
    NODE_OPTIONS: undefined,
    HOST: "127.0.0.1",
    PORT: String(port),
    GRPC_PORT: String(grpcPort),
    METRICS_PORT: String(metricsPort),
    AUTHZ_PORT: String(authzPort),
    DATA_DIR: dataDir,
    INTERNAL_TOKEN,
    LOG_LEVEL: "warn",
    RATE_LIMIT_CAPACITY: String(HUGE_LIMIT),
    RATE_LIMIT_REFILL_PER_SEC: String(HUGE_LIMIT),
    // POST /v1/api-keys adds thousands of keys to customer B: above the default cap (1 000) every one would be refused.
    MAX_ACTIVE_KEYS_PER_CUSTOMER: process.env.MAX_ACTIVE_KEYS_PER_CUSTOMER ?? "10000000",
    WORKERS: opts.workers,
    ...(mongoDb ? { MONGODB_URI: opts.mongoUri, MONGODB_DB: mongoDb } : {}),
    ...opts.env,
  };
  const child: ChildProcess = spawnTracked(process.execPath, [...nodeFlags(), "--import", "tsx", "src/main.ts"], {
    cwd: REPO,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const url = `http://127.0.0.1:${port}`;
  const workerCount = opts.workers === "auto" ? (await import("node:os")).availableParallelism() : Number(opts.workers);

  // LOG_LEVEL=warn hides the "ready" line, so readiness is: /healthz answers on PORT, GRPC_PORT
  // accepts, and (WORKERS > 1) every worker process exists; then a moment for the last to listen.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!alive()) {
      removeDir(dataDir);
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
    }
    if (Date.now() > deadline) {
      killTree(child);
      throw new Error(`server not ready in 60 s:\n${out}`);
    }
    const http = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    const grpc = http && (await tcpOpen(grpcPort));
    const procs = [...processTree(child.pid!).values()].filter((p) => p.comm.startsWith("node")).length;
    if (http && grpc && (workerCount <= 1 || procs >= workerCount + 1)) break;
    await sleep(100);
  }
  if (workerCount > 1) await sleep(1500);

  const server: BenchServer = {
    store: opts.store,
    workers: opts.workers,
    url,
    port,
    grpcPort,
    authzPort,
    metricsPort,
    pid: child.pid!,
    dataDir,
    mongoDb,
    output: () => out,
    problems: () =>
      out.split("\n").flatMap((l) => {
        if (!l.trim()) return [];
        try {
          const e = JSON.parse(l) as { level?: number; msg?: string; pid?: number; err?: { type?: string; message?: string } };
          if ((e.level ?? 0) < 40) return [];
          const level = e.level! >= 60 ? "fatal" : e.level! >= 50 ? "error" : "warn";
          return [`${level} (pid ${e.pid}): ${e.msg ?? ""}${e.err ? ` — ${e.err.type ?? "Error"}: ${e.err.message ?? ""}` : ""}`];
        } catch {
          return [l]; // not a log line: something printed outside the logger
        }
      }),
    alive,
    async stop() {
      if (!alive()) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => killTree(child), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async auditStats() {
      if (opts.store === "embedded") {
        const db = new Database(join(dataDir, "zpk.sqlite"), { readonly: true, fileMustExist: true });
        try {
          db.pragma("busy_timeout = 5000");
          const row = db.prepare("SELECT count(*) AS rows, coalesce(sum(count), 0) AS counted FROM audit_events").get() as {
            rows: number;
            counted: number;
          };
          return row;
        } finally {
          db.close();
        }
      }
      const client = new MongoClient(opts.mongoUri!, { serverSelectionTimeoutMS: 5000 });
      try {
        await client.connect();
        const events = client.db(mongoDb!).collection("audit_events");
        // Two queries: FerretDB 1.x sums a field to 0 when a $group has a second accumulator.
        const rows = await events.countDocuments();
        const [agg] = await events.aggregate<{ counted: number }>([{ $group: { _id: null, counted: { $sum: "$count" } } }]).toArray();
        return { rows, counted: agg?.counted ?? 0 };
      } finally {
        await client.close();
      }
    },
    async dispose() {
      removeDir(dataDir);
      if (mongoDb) {
        const client = new MongoClient(opts.mongoUri!, { serverSelectionTimeoutMS: 5000 });
        try {
          await client.connect();
          await client.db(mongoDb).dropDatabase();
        } catch (err) {
          process.stderr.write(`bench: could not drop MongoDB database ${mongoDb}: ${String(err)}\n`);
        } finally {
          await client.close();
        }
      }
    },
  };
  return server;
}

/** `zpk_auth_outcomes_total{outcome}` from the server's `/metrics`: how many calls it answered so. */
export async function authOutcomes(server: BenchServer, outcome: string): Promise<number> {
  return metricValue(await scrapeMetrics(server.metricsPort), `zpk_auth_outcomes_total{outcome="${outcome}"}`) ?? 0;
}

// --- the internal API, over Connect JSON and REST on PORT ----------------------------------------

const AUTH = { authorization: `Bearer ${INTERNAL_TOKEN}` };

/** A unary RPC over the Connect protocol (JSON) with the internal credential. */
export async function rpc<T = any>(server: BenchServer, method: string, body: unknown): Promise<T> {
  const res = await fetch(`${server.url}/apikeys.v1.ApiKeyService/${method}`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

export interface Fixture {
  /** Customer A: a valid key for Authenticate and GET /v1/api-keys (A has `listSize` keys). */
  customerA: string;
  validKey: string;
  /** Customer B: a key for POST /v1/api-keys, so A's list does not grow while it is measured. */
  customerB: string;
  issuerKey: string;
  /** Well-formed, valid checksum, never issued. */
  unknownKey: string;
  /** Well-formed body whose checksum does not match. */
  malformedKey: string;
  listSize: number;
}

/** A well-formed key with a valid checksum (src/domain/key-format.ts) that was never issued. */
export function unknownKey(env: "live" | "test" = "live"): string {
  const body = `zpk_${env}_${randomBytes(32).toString("base64url")}`;
  return body + checksum(body);
}

/** A key of the right shape whose checksum is wrong: refused as MALFORMED after the CRC check. */
export function badChecksumKey(): string {
  const good = unknownKey();
  const sum = good.slice(-6);
  const wrong = sum === "000000" ? "000001" : "000000";
  return good.slice(0, -6) + wrong;
}

async function issue(server: BenchServer, customerId: string, name: string): Promise<string> {
  const res = await fetch(`${server.url}/v1/api-keys`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ name, customer_id: customerId }),
  });
  const body = (await res.json()) as { secret?: string };
  if (res.status !== 201 || !body.secret) throw new Error(`issue failed: ${res.status} ${JSON.stringify(body)}`);
  return body.secret;
}

/** Provisions two customers with keys and a huge rate limit (SetRateLimit), then checks each row's
 * expected answer once, so a table of fast errors cannot pass for a table of fast answers. */
export async function provision(server: BenchServer, listSize = 10): Promise<Fixture> {
  const customerA = randomUUID();
  const customerB = randomUUID();
  for (const c of [customerA, customerB]) {
    await rpc(server, "SetRateLimit", { customerId: c, capacity: HUGE_LIMIT, refillPerSecond: HUGE_LIMIT });
  }
  const validKey = await issue(server, customerA, "bench");
  for (let i = 1; i < listSize; i++) await issue(server, customerA, `bench-${i}`);
  const issuerKey = await issue(server, customerB, "bench-issuer");
  const fx: Fixture = { customerA, validKey, customerB, issuerKey, unknownKey: unknownKey(), malformedKey: badChecksumKey(), listSize };
  await checkFixture(server, fx);
  return fx;
}

async function checkFixture(server: BenchServer, fx: Fixture): Promise<void> {
  const expect = (what: string, ok: boolean, got: unknown) => {
    if (!ok) throw new Error(`sanity check failed: ${what}: got ${JSON.stringify(got)}`);
  };
  const a0 = await rpc(server, "Authenticate", { key: fx.validKey });
  expect("Authenticate(valid, charge=0) is valid", a0.valid === true, a0);
  const a1 = await rpc(server, "Authenticate", { key: fx.validKey, charge: 1 });
  expect("Authenticate(valid, charge=1) is valid and charged against the huge limit",
    a1.valid === true && a1.rateLimit?.limit === HUGE_LIMIT, a1);
  const u = await rpc(server, "Authenticate", { key: fx.unknownKey });
  expect("Authenticate(unknown) is UNKNOWN", u.valid !== true && u.denialReason === "DENIAL_REASON_UNKNOWN", u);
  const m = await rpc(server, "Authenticate", { key: fx.malformedKey });
  expect("Authenticate(malformed) is MALFORMED", m.valid !== true && m.denialReason === "DENIAL_REASON_MALFORMED", m);
  const list = await fetch(`${server.url}/v1/api-keys`, { headers: { authorization: `Bearer ${fx.validKey}` } });
  const listBody = (await list.json()) as { data?: unknown[] };
  expect(`GET /v1/api-keys lists ${fx.listSize} keys`, list.status === 200 && listBody.data?.length === fx.listSize,
    { status: list.status, n: listBody.data?.length });
  const hz = await fetch(`${server.url}/healthz`);
  expect("GET /healthz is 200", hz.status === 200, hz.status);
  await hz.arrayBuffer();
}

/** After a charge=1 row: the key still authenticates with charge=1 (the bucket never ran dry). */
export async function checkStillCharging(server: BenchServer, fx: Fixture): Promise<string> {
  const r = await rpc(server, "Authenticate", { key: fx.validKey, charge: 1 });
  if (r.valid !== true) return `charge=1 refused after the row: ${JSON.stringify(r)}`;
  return "";
}
