/**
 * `npm run bench -- ab <ref>`: the regression rule's A/B ("no row slower by more than 5 %",
 * judged by alternating rounds in one run). A is a git worktree of <ref>, B this checkout; each
 * starts its own server with its own bench/lib/server.ts (so each is provisioned as its commit's
 * bench does), both run side by side, and each round measures every row on both, A first in odd
 * rounds and B first in even ones, so a machine that drifts during the run drifts for both. The
 * verdict per row is the median of the per-round B/A ratios, not the ratio of the medians: on these
 * VMs req/s swings ±20 % between rounds, and a round's two measurements are seconds apart.
 */
import { execFileSync } from "node:child_process";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { AuthenticateRequestSchema } from "../gen/apikeys/v1/api_key_service_pb.js";
import { grpcFrame, h2loadGrpc } from "./lib/h2load.js";
import { findTool, type Measurement, wrk, type WrkRequest } from "./lib/load.js";
import { AUTHENTICATE_PATH, forwardAuthRequest, listRequest } from "./lib/requests.js";
import { mongoServerPid, tempDir } from "./lib/proc.js";
import { median } from "./lib/report.js";
import type * as ServerModule from "./lib/server.js";
import { REPO } from "./lib/server.js";
import { num } from "./lib/settings.js";

type Server = ServerModule.BenchServer;
type Fixture = ServerModule.Fixture;
interface Side {
  name: string;
  mod: typeof ServerModule;
  server: Server;
  fx: Fixture;
}

/** The rows the A/B can run: the bench's rows of the same name, on GRPC_PORT, PORT and AUTHZ_PORT. */
const ROWS: Record<string, (side: Side, seconds: number) => Promise<Measurement>> = {
  auth: (s, seconds) => authenticate(s, s.fx.validKey, 0, "valid", seconds),
  charge1: (s, seconds) => authenticate(s, s.fx.validKey, 1, "valid", seconds),
  unknown: (s, seconds) => authenticate(s, s.fx.unknownKey, 0, "unknown", seconds),
  malformed: (s, seconds) => authenticate(s, s.fx.malformedKey, 0, "malformed", seconds),
  list: (s, seconds) => http(s, listRequest(s.server.url, s.fx.validKey), seconds),
  fa0: (s, seconds) => http(s, forwardAuthRequest(s.server.authzPort, s.fx.validKey, s.mod.INTERNAL_TOKEN, "0"), seconds),
  fa1: (s, seconds) => http(s, forwardAuthRequest(s.server.authzPort, s.fx.validKey, s.mod.INTERNAL_TOKEN, "1"), seconds),
};

const grpcConcurrency = () => num("BENCH_CONCURRENCY", 128);
const httpConnections = () => num("BENCH_HTTP_CONCURRENCY", 64);

function authenticate(s: Side, key: string, charge: number, outcome: string, seconds: number): Promise<Measurement> {
  return h2loadGrpc(
    s.server.pid,
    {
      target: `127.0.0.1:${s.server.grpcPort}`,
      path: AUTHENTICATE_PATH,
      body: grpcFrame(AuthenticateRequestSchema, { key, charge }),
      metadata: { authorization: `Bearer ${s.mod.INTERNAL_TOKEN}` },
    },
    { concurrency: grpcConcurrency(), connections: num("BENCH_GRPC_CONNECTIONS", 8), seconds },
    { countOk: () => s.mod.authOutcomes(s.server, outcome) },
  );
}

const http = (s: Side, req: WrkRequest, seconds: number) => wrk(s.server.pid, req, { connections: httpConnections(), seconds }, mongoServerPid());

/** A worktree of `ref` with this checkout's node_modules, removed by `remove`. */
function worktree(ref: string): { dir: string; commit: string; remove: () => void } {
  const commit = execFileSync("git", ["rev-parse", "--short", `${ref}^{commit}`], { cwd: REPO, encoding: "utf8" }).trim();
  const dir = join(tempDir("zpk-bench-ab-"), "a");
  execFileSync("git", ["worktree", "add", "--detach", "--quiet", dir, commit], { cwd: REPO, stdio: "inherit" });
  symlinkSync(join(REPO, "node_modules"), join(dir, "node_modules"));
  return { dir, commit, remove: () => execFileSync("git", ["worktree", "remove", "--force", dir], { cwd: REPO, stdio: "ignore" }) };
}

export async function ab(ref: string | undefined): Promise<void> {
  if (!ref) throw new Error("usage: npm run bench -- ab <git ref> (A = that commit, B = this checkout)");
  const rows = (process.env.BENCH_AB_ROWS || "auth,charge1,unknown,malformed,list").split(",").map((r) => r.trim());
  for (const r of rows) if (!ROWS[r]) throw new Error(`BENCH_AB_ROWS: unknown row ${JSON.stringify(r)} (${Object.keys(ROWS).join(", ")})`);
  const rounds = Math.max(1, Math.round(num("BENCH_ROUNDS", 5)));
  const seconds = num("BENCH_SECONDS", 5);
  const warmup = num("BENCH_WARMUP_SECONDS", 1);
  const store = process.env.MONGODB_URI ? "mongo" : "embedded";
  findTool("h2load");
  findTool("wrk");
  const tree = worktree(ref);
  const sides: Side[] = [];
  try {
    const here = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO, encoding: "utf8" }).trim();
    const modules: [string, typeof ServerModule][] = [
      [`A ${tree.commit}`, (await import(join(tree.dir, "bench/lib/server.ts"))) as typeof ServerModule],
      [`B ${here}${execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: REPO, encoding: "utf8" }).trim() ? "+changes" : ""}`, await import("./lib/server.js")],
    ];
    for (const [name, mod] of modules) {
      const server = await mod.startServer({ store, workers: "1", mongoUri: process.env.MONGODB_URI });
      sides.push({ name, mod, server, fx: await mod.provision(server) });
    }
    process.stderr.write(`bench ab: ${sides[0]!.name} vs ${sides[1]!.name}, ${store} store, WORKERS=1, ${rounds} rounds × ${seconds} s, rows ${rows.join(", ")}\n`);
    const rps = new Map(rows.map((r) => [r, [[], []] as [number[], number[]]]));
    for (let round = 0; round <= rounds; round++) {
      for (const row of rows) {
        for (const i of round % 2 === 1 ? [0, 1] : [1, 0]) {
          const side = sides[i]!;
          const m = await ROWS[row]!(side, round === 0 ? warmup : seconds);
          if (!side.server.alive()) throw new Error(`${side.name}'s server died:\n${side.server.output().slice(-4000)}`);
          if (m.errors > 0) throw new Error(`${row} on ${side.name}: ${m.errors} errors (${m.errorSample})`);
          if (round === 0) continue; // warm-up
          rps.get(row)![i]!.push(m.rps);
          const db = m.store ? `, database CPU ${Math.round(m.store.cpuPct)} %` : "";
          process.stderr.write(`  round ${round}/${rounds} · ${row} · ${side.name}: ${Math.round(m.rps).toLocaleString("en-US")} req/s, ${Math.round(m.cpuUsPerReq)} µs CPU a request, server CPU ${Math.round(m.serverCpuPct)} %${db}\n`);
        }
      }
    }
    process.stdout.write(`\n| row | A ${tree.commit} req/s (median) | B req/s (median) | B/A, median of the rounds | B/A per round |\n|---|---:|---:|---:|---|\n`);
    for (const row of rows) {
      const [a, b] = rps.get(row)!;
      const ratios = a.map((x, k) => b[k]! / x);
      const verdict = median(ratios) < 0.95 ? " ✗ slower by more than 5 %" : "";
      process.stdout.write(`| ${row} | ${Math.round(median(a)).toLocaleString("en-US")} | ${Math.round(median(b)).toLocaleString("en-US")} | ${median(ratios).toFixed(3)}${verdict} | ${ratios.map((x) => x.toFixed(2)).join(" / ")} |\n`);
    }
  } finally {
    for (const s of sides) {
      await s.server.stop();
      await s.server.dispose();
    }
    tree.remove();
  }
}
