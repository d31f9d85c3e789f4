import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, release } from "node:os";
import { toolVersion } from "./load.js";
import { REPO, type StoreKind } from "./server.js";

/** The bench's settings (environment variables, see bench/README.md) and what a report says about the run. */

export const num = (name: string, dflt: number) => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number (got ${JSON.stringify(v)})`);
  return n;
};

const intList = (name: string, dflt: string) =>
  (process.env[name] || dflt).split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a comma-separated list of positive integers (got ${JSON.stringify(s)})`);
    return n;
  });

export const settings = () => {
  const stores = (process.env.BENCH_STORES || (process.env.MONGODB_URI ? "embedded,mongo" : "embedded")).split(",").map((s) => s.trim());
  for (const s of stores) if (s !== "embedded" && s !== "mongo") throw new Error(`BENCH_STORES: unknown store ${JSON.stringify(s)} (embedded, mongo)`);
  if (stores.includes("mongo") && !process.env.MONGODB_URI) throw new Error("BENCH_STORES includes mongo but MONGODB_URI is not set");
  const only = (process.env.BENCH_ONLY || "grpc,connect,http,workers").split(",").map((g) => g.trim());
  for (const g of only) if (!["grpc", "connect", "http", "workers"].includes(g)) throw new Error(`BENCH_ONLY: unknown group ${JSON.stringify(g)} (grpc, connect, http, workers)`);
  const ghzEnv = process.env.BENCH_GHZ ?? "";
  return {
    only,
    seconds: num("BENCH_SECONDS", 5),
    warmupSeconds: num("BENCH_WARMUP_SECONDS", 1),
    /** Alternating rounds: each no-op row and the rows compared with it, in turn, this many times. */
    rounds: Math.max(1, Math.round(num("BENCH_ROUNDS", 3))),
    /** gRPC rows (h2load; ghz): calls in flight = connections × streams per connection. */
    concurrency: intList("BENCH_CONCURRENCY", "128"),
    connections: num("BENCH_GRPC_CONNECTIONS", 8),
    /** HTTP/1.1 rows (wrk): keep-alive connections. */
    httpConcurrency: intList("BENCH_HTTP_CONCURRENCY", "64"),
    workersAuto: process.env.BENCH_WORKERS_AUTO || "auto",
    stores: stores as StoreKind[],
    /** ghz rows next to the h2load ones, for comparison (BENCH_GHZ=1, or a path to ghz). */
    ghz: ghzEnv !== "" && ghzEnv !== "0",
    /** A directory: profile mode (bench/run.ts profileRun), nothing else is measured. */
    cpuProf: process.env.BENCH_CPU_PROF || "",
    profileRow: process.env.BENCH_PROFILE_ROW || "auth",
    /** Where the report goes; the default bench/RESULTS.md only from a full-length run. */
    resultsFile: process.env.BENCH_RESULTS_FILE || "",
  };
};
export type Settings = ReturnType<typeof settings>;

/** The exact command, as it would be typed again (MONGODB_URI's value hidden: it may hold a password). */
export function commandLine(): string {
  const envs = Object.keys(process.env)
    .filter((k) => k.startsWith("BENCH_") || k === "MONGODB_URI")
    .sort()
    .map((k) => (k === "MONGODB_URI" ? "MONGODB_URI=…" : `${k}=${process.env[k]}`));
  const args = process.argv.slice(2);
  const cmd =
    process.env.npm_lifecycle_event === "bench"
      ? `npm run bench${args.length ? ` -- ${args.join(" ")}` : ""}`
      : `node --import tsx bench/run.ts ${args.join(" ")}`.trim();
  return [...envs, cmd].join(" ");
}

/** Lines describing the machine and the code measured. */
export function machine(toolsUsed: ("ghz" | "wrk" | "h2load")[] = ["h2load", "wrk"]): string[] {
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, { cwd: REPO, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    } catch {
      return "";
    }
  };
  const commit = git(["rev-parse", "--short", "HEAD"]);
  const dirty = git(["status", "--porcelain", "--", "src", "proto", "gen", "package.json"]) ? " + uncommitted changes in src/proto/gen/package.json" : "";
  const tools = toolsUsed.map((t) => toolVersion(t)).join("; ");
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${availableParallelism()} cores (nproc), ${cpus()[0]?.model ?? "unknown CPU"}, Linux ${release()}`,
    `- Node ${process.version}; ${tools}`,
    `- commit: ${commit || "unknown"}${dirty}`,
  ];
}

/** The load-average line of a report, with a warning when the machine was busy before the run. */
export function loadLine(start: number[], end: number[]): string {
  const f = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" / ");
  const busy = start[0]! >= 1 ? " — **the machine was busy before the run: treat these figures as noise**" : "";
  return `- load average (1/5/15 min) at start: ${f(start)}, at end: ${f(end)}${busy}`;
}
