import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Processes the bench starts, and what they cost: CPU time and RSS summed over a process tree,
 * read from /proc (Linux). Every child is tracked and killed, with its descendants, by pid, when
 * the bench ends — normally, on an error, or on SIGINT/SIGTERM.
 */

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcInfo {
  ppid: number;
  /** utime + stime, in clock ticks */
  ticks: number;
  comm: string;
}

function readProc(pid: number): ProcInfo | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = s.lastIndexOf(")");
    const comm = s.slice(s.indexOf("(") + 1, close);
    // Fields after "(comm)": 3 state, 4 ppid, … 14 utime, 15 stime (proc(5)); rest[i] is field i+3.
    const rest = s.slice(close + 2).split(" ");
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), comm };
  } catch {
    return null;
  }
}

function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** `root` and all its descendants that are alive now. */
export function processTree(root: number): Map<number, ProcInfo> {
  const all = new Map<number, ProcInfo>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProc(Number(name));
    if (info) all.set(Number(name), info);
  }
  const tree = new Map<number, ProcInfo>();
  const rootInfo = all.get(root);
  if (!rootInfo) return tree;
  tree.set(root, rootInfo);
  let added = true;
  while (added) {
    added = false;
    for (const [pid, info] of all) {
      if (!tree.has(pid) && tree.has(info.ppid)) {
        tree.set(pid, info);
        added = true;
      }
    }
  }
  return tree;
}

export interface TreeSnapshot {
  at: number;
  ticks: Map<number, number>;
  rssKb: Map<number, number>;
  comm: Map<number, string>;
}

export function snapshot(root: number): TreeSnapshot {
  const tree = processTree(root);
  const snap: TreeSnapshot = { at: performance.now(), ticks: new Map(), rssKb: new Map(), comm: new Map() };
  for (const [pid, info] of tree) {
    snap.ticks.set(pid, info.ticks);
    snap.rssKb.set(pid, rssKb(pid));
    snap.comm.set(pid, info.comm);
  }
  return snap;
}

export const totalRssMb = (s: TreeSnapshot) => [...s.rssKb.values()].reduce((a, b) => a + b, 0) / 1024;

/** CPU used between two snapshots, in % of one core (200 % = two cores busy), total and per pid. */
export function cpuBetween(a: TreeSnapshot, b: TreeSnapshot): { pct: number; seconds: number; perPid: Map<number, number> } {
  const wall = (b.at - a.at) / 1000;
  const perPid = new Map<number, number>();
  let ticks = 0;
  for (const [pid, t] of b.ticks) {
    const d = t - (a.ticks.get(pid) ?? 0);
    ticks += d;
    perPid.set(pid, wall > 0 ? (100 * d) / CLK_TCK / wall : 0);
  }
  const seconds = ticks / CLK_TCK;
  return { pct: wall > 0 ? (100 * seconds) / wall : 0, seconds, perPid };
}

/** Samples a process tree while a load runs: CPU between start and stop, peak RSS in between. */
export class TreeSampler {
  private first: TreeSnapshot;
  private peakRssMb: number;
  private timer: NodeJS.Timeout;

  constructor(
    private readonly root: number,
    intervalMs = 500,
  ) {
    this.first = snapshot(root);
    this.peakRssMb = totalRssMb(this.first);
    this.timer = setInterval(() => {
      this.peakRssMb = Math.max(this.peakRssMb, totalRssMb(snapshot(this.root)));
    }, intervalMs);
  }

  stop(): { cpuPct: number; cpuSeconds: number; peakRssMb: number; perProcessCpuPct: number[] } {
    clearInterval(this.timer);
    const last = snapshot(this.root);
    const cpu = cpuBetween(this.first, last);
    const peakRssMb = Math.max(this.peakRssMb, totalRssMb(last));
    // CPU of each process that did work (each worker, or the single server), busiest first.
    const perProcessCpuPct = [...cpu.perPid.values()].filter((pct) => pct >= 1).sort((x, y) => y - x);
    return { cpuPct: cpu.pct, cpuSeconds: cpu.seconds, peakRssMb, perProcessCpuPct };
  }
}

/**
 * The pid of the process listening on 127.0.0.1:`port` (or null: none, another user's, or no `ss`),
 * so the bench can say what a database server on this machine spent while a row ran.
 */
export function listenerPid(port: number): number | null {
  try {
    const out = execFileSync("ss", ["-ltnpH", `sport = :${port}`], { stdio: ["ignore", "pipe", "ignore"] }).toString();
    const m = /pid=(\d+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

let mongoPid: number | null | undefined;
/** The MongoDB server's pid when MONGODB_URI names one port on 127.0.0.1 or localhost (FerretDB here), else null. */
export function mongoServerPid(): number | null {
  if (mongoPid !== undefined) return mongoPid;
  const m = /^mongodb:\/\/(?:[^@/]*@)?(?:127\.0\.0\.1|localhost):(\d+)(?:[/?]|$)/.exec(process.env.MONGODB_URI ?? "");
  return (mongoPid = m ? listenerPid(Number(m[1])) : null);
}

// --- children ------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

/** spawn(), remembered so that cleanup() can kill it (and its descendants) whatever happens. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  const child = spawn(cmd, args, opts);
  children.add(child);
  child.once("exit", () => children.delete(child));
  child.once("error", () => children.delete(child));
  return child;
}

/** SIGKILL a child and every descendant it has, each by pid. */
export function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const pids = [...processTree(child.pid).keys()].reverse(); // descendants first
  for (const pid of pids.length ? pids : [child.pid]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

const tempDirs = new Set<string>();

/** A fresh directory under the system temp dir, removed by cleanup() if not removed before. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Kills every tracked child (with its descendants) and removes the temp dirs left. */
export function cleanup(): void {
  for (const child of [...children]) killTree(child);
  children.clear();
  for (const dir of [...tempDirs]) removeDir(dir);
}

let installed = false;
/** Kill every tracked child on exit, on SIGINT/SIGTERM/SIGHUP, and on an uncaught error. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on("exit", cleanup);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping the processes it started\n`);
      cleanup();
      process.exit(130);
    });
  }
  process.on("uncaughtException", (err) => {
    process.stderr.write(`bench: ${err.stack ?? err}\n`);
    cleanup();
    process.exit(1);
  });
}

/**
 * Runs a tracked child to completion, collecting stdout and stderr. The command runs under bash,
 * whose `times` reports the CPU time it used (user + system, all its threads), exactly, after it
 * exits: `cpuPct` is that over the wall time, in % of one core.
 */
export function runTracked(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { onStart?: (child: ChildProcess) => void } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; cpuPct: number }> {
  return new Promise((resolve, reject) => {
    const wrapper = '"$@"; rc=$?; { echo BENCH_TIMES; times; } >&2; exit $rc';
    const started = performance.now();
    const command = loadCpus ? ["taskset", "-c", loadCpus, cmd, ...args] : [cmd, ...args];
    const child = spawnTracked("bash", ["-c", wrapper, "bench-load", ...command], { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      const wall = (performance.now() - started) / 1000;
      // `times`: the shell's own user/system line, then its children's (the command's).
      const m = /^BENCH_TIMES\n.*\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/m.exec(stderr);
      const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
      stderr = stderr.replace(/^BENCH_TIMES\n.*\n.*\n?/m, "");
      resolve({ code, stdout, stderr, cpuPct: wall > 0 ? (100 * cpu) / wall : NaN });
    });
    opts.onStart?.(child);
  });
}

/** The CPUs load tools run on (`taskset -c`), once pinApart has pinned a server; else anywhere. */
let loadCpus: string | null = null;

/**
 * Profile mode: the servers' process trees (every thread, and the workers they fork later) on
 * CPU 0 and every load tool started afterwards on the other CPUs. Unpinned, the tool woken on the
 * server's core pre-empts it, and the profile books that time to whatever the server was doing:
 * the syscalls that wake the tool (`writev`) and the native calls around them. Needs ≥ 2 CPUs
 * and taskset (util-linux); answers whether it pinned.
 */
export function pinApart(serverPids: number[]): boolean {
  const cpus = availableParallelism();
  if (cpus < 2) return false;
  try {
    for (const root of serverPids) for (const pid of processTree(root).keys()) execFileSync("taskset", ["-a", "-p", "-c", "0", String(pid)], { stdio: "ignore" });
  } catch {
    return false;
  }
  loadCpus = `1-${cpus - 1}`;
  return true;
}

/** Load tools run on every CPU again (the pinned servers are stopped, or stay where they are). */
export function unpinLoad(): void {
  loadCpus = null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
