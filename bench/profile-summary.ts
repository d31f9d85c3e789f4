/**
 * Self time of a V8 CPU profile (`node --cpu-prof`, e.g. from `BENCH_CPU_PROF=dir npm run bench`),
 * by where the code lives and by function:
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top=25] [--files] [--from=s] [--to=s] [--requests=n]
 *
 * --from/--to keep only the samples that many seconds after the profile's start (the process's
 * start): the bench's profile mode passes the measured row's window, so startup and provisioning
 * are left out.
 * Groups: node:http2 internals (node:internal/http2/*, node:http2), other node: internals,
 * @grpc/grpc-js, @bufbuild/protobuf, @connectrpc/*, prom-client, pino, other packages by name,
 * our src/ files (each file with --files, else "src/ (ours)" per directory), bench/ and gen/,
 * and V8's own entries: (garbage collector) as GC, (program), (idle). Percentages are of the
 * profile's total and of its busy time (total minus (idle)).
 *
 * Self time alone undercounts what our code costs: node's and the libraries' functions it calls
 * (a socket write, a hash, a TextEncoder) are self time of node. So the summary also splits the
 * busy time by whether a src/ frame is on the sample's stack: "under src/" is our code and all it
 * called, "no src/ frame" the transport's own work around it (parsing, framing, ticks, GC).
 * --requests=n (the bench's profile mode passes the row's count in the window) adds µs per request.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const REPO = fileURLToPath(new URL("..", import.meta.url));

/** A script URL as a path relative to the repository (node_modules/…, src/…), or as it is. */
function shortUrl(url: string): string {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  return path.startsWith(REPO) ? path.slice(REPO.length) : path;
}

/** The group a frame's self time is counted in. */
export function groupOf(frame: CallFrame, byFile = false): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(idle)" || functionName === "(program)" || functionName === "(root)") return functionName;
    return "native (C++ bindings, RegExp)";
  }
  if (url.startsWith("node:")) {
    if (/^node:(internal\/)?http2/.test(url)) return "node:http2 internals";
    if (/^node:(internal\/)?(net|stream|streams\/|stream_base_commons|buffer)/.test(url)) return "node: net, streams, buffer";
    if (/^node:(events|internal\/process\/task_queues|internal\/timers|timers)/.test(url)) return "node: events, ticks, timers";
    if (/^node:(internal\/)?crypto/.test(url)) return "node: crypto (SHA-256)";
    if (/^node:internal\/(modules|bootstrap|deps\/cjs-module-lexer|url|worker)/.test(url)) return "node: module loading (startup)";
    return "node: other internals";
  }
  if (url.startsWith("wasm://")) return "wasm (cjs-module-lexer)";
  const path = shortUrl(url);
  const nm = path.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = path.slice(nm + "node_modules/".length).split("/");
    const pkg = rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
    if (pkg.startsWith("@connectrpc/")) return "@connectrpc/*";
    if (pkg === "tsx" || pkg === "esbuild") return "tsx loader";
    return pkg;
  }
  const m = /^(src|gen|bench|test)\/(.*)$/.exec(path);
  if (m) {
    if (m[1] === "src") return byFile ? `src/${m[2]}` : "src/ (ours)";
    return `${m[1]}/`;
  }
  return path;
}

/** Self time in ms per profile node, from the samples (within [fromMs, toMs) of the profile's start) and their time deltas. */
function selfTimes(p: CpuProfile, fromMs = 0, toMs = Infinity): Map<number, number> {
  const self = new Map<number, number>();
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    at += (p.timeDeltas[i] ?? 0) / 1000;
    if (at < fromMs || at >= toMs) continue;
    // timeDeltas[i] is the time from sample i-1 to sample i, so sample i lasts timeDeltas[i+1]
    // (as Chrome DevTools counts it); the last sample gets its own delta.
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  return self;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : " ".repeat(n - s.length) + s);

export interface SummaryOptions {
  /** Functions listed (25). */
  top?: number;
  /** src/ time per file rather than in one group. */
  byFile?: boolean;
  /** Only the samples from/to these seconds after the profile's start (the process's start). */
  fromSeconds?: number;
  toSeconds?: number;
  /** Requests served in the window: adds µs per request to the split by src/ on the stack. */
  requests?: number;
}

const isOurs = (frame: CallFrame) => groupOf(frame, true).startsWith("src/");

/**
 * Per profile node: whether it or a caller of it is in src/ (the tree's parent links, memoised).
 * Exported for its test.
 */
export function underOurs(p: Pick<CpuProfile, "nodes">): Map<number, boolean> {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const memo = new Map<number, boolean>();
  const visit = (id: number): boolean => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    // Iterative up the chain: stacks are deep enough to matter for recursion.
    const chain: number[] = [];
    let at: number | undefined = id;
    let found = false;
    while (at !== undefined) {
      const m = memo.get(at);
      if (m !== undefined) {
        found = m;
        break;
      }
      chain.push(at);
      if (isOurs(byId.get(at)!.callFrame)) {
        found = true;
        break;
      }
      at = parent.get(at);
    }
    // Every node between id and the first src/ frame (or a memoised answer) shares the answer;
    // above a src/ frame the answer is not known from here, so only the chain below it is kept.
    for (const n of chain) memo.set(n, found);
    return found;
  };
  for (const n of p.nodes) visit(n.id);
  return memo;
}

export function summarizeProfile(file: string, opts: SummaryOptions = {}): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const top = opts.top ?? 25;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p, (opts.fromSeconds ?? 0) * 1000, (opts.toSeconds ?? Infinity) * 1000);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const groups = new Map<string, number>();
  const fns = new Map<string, { ms: number; group: string }>();
  for (const [id, ms] of self) {
    const frame = byId.get(id)!.callFrame;
    const g = groupOf(frame, opts.byFile);
    groups.set(g, (groups.get(g) ?? 0) + ms);
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : "";
    const key = `${frame.functionName || "(anonymous)"}${where ? `  ${where}` : ""}`;
    const f = fns.get(key) ?? { ms: 0, group: groupOf(frame) };
    f.ms += ms;
    fns.set(key, f);
  }
  const idle = groups.get("(idle)") ?? 0;
  const busy = total - idle;
  const pct = (ms: number, of: number) => (of > 0 ? `${((100 * ms) / of).toFixed(1)} %` : "–");
  const span = (p.endTime - p.startTime) / 1e6;
  const window =
    opts.fromSeconds !== undefined || opts.toSeconds !== undefined
      ? `, window ${(opts.fromSeconds ?? 0).toFixed(1)}–${Math.min(opts.toSeconds ?? span, span).toFixed(1)} s of ${span.toFixed(1)} s`
      : "";
  // Groups under 0.3 % of the busy time are folded into one line.
  const small = [...groups].filter(([g, ms]) => g !== "(idle)" && ms < 0.003 * busy);
  if (small.length > 1) {
    for (const [g] of small) groups.delete(g);
    groups.set(`other (${small.length} groups, each < 0.3 %)`, small.reduce((a, [, ms]) => a + ms, 0));
  }
  const out: string[] = [
    `profile: ${(total / 1000).toFixed(1)} s sampled${window}, busy ${(busy / 1000).toFixed(1)} s (all but (idle))`,
    "",
    `${pad("self time by group", 34)} ${lpad("ms", 9)} ${lpad("of total", 9)} ${lpad("of busy", 9)}`,
  ];
  for (const [g, ms] of [...groups].sort((a, b) => b[1] - a[1])) {
    out.push(`${pad(g, 34)} ${lpad(ms.toFixed(0), 9)} ${lpad(pct(ms, total), 9)} ${lpad(g === "(idle)" ? "" : pct(ms, busy), 9)}`);
  }
  out.push("", ...stackSplit(p, byId, self, busy, opts.requests));
  out.push("", `top ${top} functions by self time (of busy):`);
  const list = [...fns].filter(([, f]) => f.group !== "(idle)").sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
  for (const [name, f] of list) out.push(`${lpad(f.ms.toFixed(0), 7)} ms ${lpad(pct(f.ms, busy), 7)}  ${pad(f.group, 30)} ${name}`);
  return out.join("\n");
}

/**
 * The busy time split by whether a src/ frame is on the stack, each side by the group of the
 * function that was running (the node and library work our code called is counted under src/).
 */
function stackSplit(p: CpuProfile, byId: Map<number, ProfileNode>, self: Map<number, number>, busy: number, requests?: number): string[] {
  const under = underOurs(p);
  const sides = { ours: new Map<string, number>(), theirs: new Map<string, number>() };
  for (const [id, ms] of self) {
    const frame = byId.get(id)!.callFrame;
    const g = groupOf(frame);
    if (g === "(idle)") continue;
    const side = under.get(id) ? sides.ours : sides.theirs;
    const label = isOurs(frame) ? "self in src/" : g;
    side.set(label, (side.get(label) ?? 0) + ms);
  }
  const per = (ms: number) => (requests && requests > 0 ? lpad(((ms * 1000) / requests).toFixed(1), 11) : "");
  const pct = (ms: number) => (busy > 0 ? `${((100 * ms) / busy).toFixed(1)} %` : "–");
  const line = (label: string, ms: number) => `${pad(label, 42)} ${lpad(ms.toFixed(0), 7)} ${lpad(pct(ms), 8)}${per(ms)}`;
  const out = [`${pad("busy time by whether src/ is on the stack", 42)} ${lpad("ms", 7)} ${lpad("of busy", 8)}${requests ? lpad("µs/request", 11) : ""}`];
  for (const [title, side] of [["under a src/ frame (our code, what it calls)", sides.ours], ["no src/ frame (the transport around it)", sides.theirs]] as const) {
    const sum = [...side.values()].reduce((a, b) => a + b, 0);
    out.push(line(title, sum));
    const rows = [...side].sort((a, b) => b[1] - a[1]);
    const shown = rows.filter(([, ms]) => ms >= 0.01 * busy);
    for (const [g, ms] of shown) out.push(line(`  ${g}`, ms));
    const rest = rows.length - shown.length;
    if (rest > 0) out.push(line(`  other (${rest} groups, each < 1 %)`, rows.slice(shown.length).reduce((a, [, ms]) => a + ms, 0)));
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const files = args.filter((a) => !a.startsWith("--"));
  if (files.length === 0) {
    process.stderr.write("usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top=25] [--files] [--from=s] [--to=s] [--requests=n]\n");
    process.exit(2);
  }
  const arg = (name: string) => {
    const a = args.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? undefined : Number(a.slice(name.length + 3));
  };
  for (const f of files) {
    if (files.length > 1) process.stdout.write(`\n${f}\n\n`);
    const opts: SummaryOptions = { top: arg("top") ?? 25, byFile: args.includes("--files") };
    if (arg("from") !== undefined) opts.fromSeconds = arg("from");
    if (arg("to") !== undefined) opts.toSeconds = arg("to");
    if (arg("requests") !== undefined) opts.requests = arg("requests");
    process.stdout.write(`${summarizeProfile(f, opts)}\n`);
  }
}
