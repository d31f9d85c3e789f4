import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { removeDir, runTracked, tempDir, TreeSampler } from "./proc.js";
import { REPO } from "./server.js";

/**
 * The load generators: ghz for RPCs (gRPC over HTTP/2 to either port), wrk for HTTP/1.1 with
 * keep-alive. Each run is watched from /proc: the server's CPU and RSS, and the load tool's CPU
 * (on a 2-core machine the tool shares the cores with the server; its CPU says how much).
 */

export interface Measurement {
  /** Successful responses per second. */
  rps: number;
  requests: number;
  errors: number;
  /** First error message seen, when there were errors. */
  errorSample: string;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  serverCpuPct: number;
  /** Server CPU time per successful request, in microseconds. */
  cpuUsPerReq: number;
  serverRssMb: number;
  /** CPU % of each server process (workers), busiest first. */
  serverProcCpuPct: number[];
  loadCpuPct: number;
  /** The MongoDB pass with the database server on this machine: its CPU while the row ran (% of one core, µs per successful request). */
  store?: { cpuPct: number; cpuUsPerReq: number };
  /** Open loop with h2load: how its requests went out (arrivalBursts). */
  bursts?: Bursts;
}

/** How an open-loop h2load run sent its requests (h2load.ts, arrivalBursts). */
export interface Bursts {
  /** Requests in the median burst. */
  medianSize: number;
  /** Median time from one burst's first request to the next one's, ms. */
  medianSpacingMs: number;
}

export function findTool(name: "ghz" | "wrk" | "h2load"): string {
  // BENCH_GHZ=1 switches the ghz rows on, so a path is BENCH_<TOOL>_PATH (or BENCH_<TOOL> if it has a "/").
  const envPath = process.env[`BENCH_${name.toUpperCase()}_PATH`] || process.env[`BENCH_${name.toUpperCase()}`];
  if (envPath && envPath.includes("/")) return envPath;
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  if (name === "ghz") {
    const dirs: string[] = [];
    try {
      const gobin = execFileSync("go", ["env", "GOBIN"]).toString().trim();
      if (gobin) dirs.push(gobin);
      dirs.push(join(execFileSync("go", ["env", "GOPATH"]).toString().trim(), "bin"));
    } catch {
      /* no go */
    }
    dirs.push(join(homedir(), "go", "bin"));
    for (const d of dirs) if (existsSync(join(d, name))) return join(d, name);
  }
  throw new Error(`${name} not found: run \`bash scripts/install-bench-tools.sh\` (or set BENCH_${name.toUpperCase()}_PATH)`);
}

export function toolVersion(name: "ghz" | "wrk" | "h2load"): string {
  const path = findTool(name);
  if (name === "ghz") {
    // `go install …@latest` builds report "dev" to --version; the module version is in the binary.
    try {
      const m = /\tmod\tgithub\.com\/bojand\/ghz\t(\S+)/.exec(execFileSync("go", ["version", "-m", path]).toString());
      if (m) return `ghz ${m[1]}`;
    } catch {
      /* no go */
    }
  }
  try {
    return `${name} ${execFileSync(path, ["--version"], { stdio: ["ignore", "pipe", "pipe"] }).toString().trim().split("\n")[0]}`;
  } catch (err) {
    // wrk --version prints its banner and exits 1.
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    const text = `${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}`;
    return text.split("\n")[0]!.replace(/ Copyright.*/, "").trim() || `${name} (unknown version)`;
  }
}

export const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/**
 * Runs a load tool while sampling the server tree (and the database server's, `storePid`); the
 * tool's own CPU comes from bash `times`.
 */
export async function underLoad(serverPid: number, run: () => Promise<{ code: number | null; stdout: string; stderr: string; cpuPct: number }>, storePid: number | null = null) {
  const sampler = new TreeSampler(serverPid);
  const storeSampler = storePid !== null ? new TreeSampler(storePid) : null;
  try {
    const result = await run();
    return { result, server: sampler.stop(), store: storeSampler?.stop() ?? null, loadCpuPct: result.cpuPct };
  } catch (err) {
    sampler.stop();
    storeSampler?.stop();
    throw err;
  }
}

let protosetFile: string | null = null;
/**
 * The API and health protos compiled by buf (node_modules) into one descriptor set for ghz:
 * ghz's own .proto parser refuses proto3 `optional` fields, which our proto uses.
 */
export function protoset(): string {
  if (protosetFile) return protosetFile;
  const dir = tempDir("zpk-bench-protoset-");
  const file = join(dir, "zpk.binpb");
  execFileSync(join(REPO, "node_modules/.bin/buf"), ["build", "-o", file], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  return (protosetFile = file);
}

// --- ghz ------------------------------------------------------------------------------------------

export interface GhzCall {
  /** host:port */
  target: string;
  /** e.g. apikeys.v1.ApiKeyService.Authenticate */
  call: string;
  data: unknown;
  metadata?: Record<string, string>;
}

export interface GhzLoad {
  concurrency: number;
  connections: number;
  seconds: number;
  /** Fixed request rate (ghz --rps); 0 = as fast as it goes. */
  rps?: number;
}

interface GhzReport {
  count: number;
  total: number;
  rps: number;
  errorDistribution?: Record<string, number> | null;
  statusCodeDistribution?: Record<string, number> | null;
  details?: { latency: number; status: string; error: string }[] | null;
}

export async function ghz(serverPid: number, call: GhzCall, load: GhzLoad): Promise<Measurement> {
  const dir = tempDir("zpk-bench-ghz-");
  const out = join(dir, "report.json");
  const args = [
    "--insecure",
    `--protoset=${protoset()}`,
    `--call=${call.call}`,
    `--data=${JSON.stringify(call.data)}`,
    ...(call.metadata ? [`--metadata=${JSON.stringify(call.metadata)}`] : []),
    `--concurrency=${load.concurrency}`,
    `--connections=${Math.min(load.connections, load.concurrency)}`,
    `--duration=${load.seconds}s`,
    "--duration-stop=ignore", // calls in flight at the end are neither counted nor errors
    ...(load.rps ? [`--rps=${Math.round(load.rps)}`] : []),
    "--timeout=10s",
    "--format=json",
    `--output=${out}`,
    call.target,
  ];
  try {
    const { result, server, loadCpuPct } = await underLoad(serverPid, () => runTracked(findTool("ghz"), args, { cwd: REPO }));
    if (result.code !== 0 && !existsSync(out)) throw new Error(`ghz failed (${result.code}): ${result.stderr || result.stdout}`);
    const report = JSON.parse(readFileSync(out, "utf8")) as GhzReport;
    const details = report.details ?? [];
    const okLat = new Float64Array(details.filter((d) => d.status === "OK").map((d) => d.latency / 1e6)).sort();
    const errorDist = report.errorDistribution ?? {};
    const errors = Object.values(errorDist).reduce((a, b) => a + b, 0);
    const okCount = report.count - errors;
    const seconds = report.total / 1e9;
    const rps = seconds > 0 ? okCount / seconds : 0;
    return {
      rps,
      requests: report.count,
      errors,
      errorSample: Object.keys(errorDist)[0] ?? "",
      p50Ms: percentile(okLat, 50),
      p99Ms: percentile(okLat, 99),
      p999Ms: percentile(okLat, 99.9),
      serverCpuPct: server.cpuPct,
      cpuUsPerReq: okCount > 0 ? (server.cpuSeconds * 1e6) / okCount : NaN,
      serverRssMb: server.peakRssMb,
      serverProcCpuPct: server.perProcessCpuPct,
      loadCpuPct,
    };
  } finally {
    removeDir(dir);
  }
}

// --- wrk ------------------------------------------------------------------------------------------

export interface WrkRequest {
  url: string;
  method?: "GET" | "POST";
  authorization?: string;
  body?: string;
  /** More request headers. */
  headers?: Record<string, string>;
}

interface WrkJson {
  requests: number;
  duration_us: number;
  connect_errors: number;
  read_errors: number;
  write_errors: number;
  status_errors: number;
  timeout_errors: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
}

/** `storePid`: a database server on this machine whose CPU the row reports too (Measurement.store). */
export async function wrk(serverPid: number, req: WrkRequest, load: { connections: number; seconds: number }, storePid: number | null = null): Promise<Measurement> {
  const threads = Math.max(1, Math.min(Number(process.env.BENCH_WRK_THREADS ?? 2), load.connections));
  const args = [
    `--threads=${threads}`,
    `--connections=${load.connections}`,
    `--duration=${load.seconds}s`,
    "--timeout=10s",
    `--script=${join(REPO, "bench/wrk/request.lua")}`,
    req.url,
  ];
  const env = {
    ...process.env,
    BENCH_WRK_METHOD: req.method ?? "GET",
    BENCH_WRK_AUTH: req.authorization ?? "",
    BENCH_WRK_BODY: req.body ?? "",
    BENCH_WRK_HEADERS: Object.entries(req.headers ?? {})
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
  };
  const { result, server, store, loadCpuPct } = await underLoad(serverPid, () => runTracked(findTool("wrk"), args, { cwd: REPO, env }), storePid);
  const line = result.stdout.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (result.code !== 0 || !line) throw new Error(`wrk failed (${result.code}): ${result.stderr}${result.stdout}`);
  const r = JSON.parse(line.slice("BENCH_JSON ".length)) as WrkJson;
  const errors = r.connect_errors + r.read_errors + r.write_errors + r.status_errors + r.timeout_errors;
  const ok = r.requests - r.status_errors;
  const kinds = Object.entries({ connect: r.connect_errors, read: r.read_errors, write: r.write_errors, status: r.status_errors, timeout: r.timeout_errors })
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  return {
    rps: r.duration_us > 0 ? ok / (r.duration_us / 1e6) : 0,
    requests: r.requests,
    errors,
    errorSample: kinds ? `${kinds} (status = non-2xx/3xx)` : "",
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    p999Ms: r.p999_us / 1000,
    serverCpuPct: server.cpuPct,
    cpuUsPerReq: ok > 0 ? (server.cpuSeconds * 1e6) / ok : NaN,
    serverRssMb: server.peakRssMb,
    serverProcCpuPct: server.perProcessCpuPct,
    loadCpuPct,
    ...(store ? { store: { cpuPct: store.cpuPct, cpuUsPerReq: ok > 0 ? (store.cpuSeconds * 1e6) / ok : NaN } } : {}),
  };
}
