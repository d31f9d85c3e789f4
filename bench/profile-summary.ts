/**
 * Self time of a V8 CPU profile (`node --cpu-prof`, e.g. from `BENCH_CPU_PROF=dir npm run bench`),
 * by where the code lives and by function:
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top=25] [--files]
 *
 * Groups: node:http2 internals (node:internal/http2/*, node:http2), other node: internals,
 * @grpc/grpc-js, @bufbuild/protobuf, @connectrpc/*, prom-client, pino, other packages by name,
 * our src/ files (each file with --files, else "src/ (ours)" per directory), bench/ and gen/,
 * and V8's own entries: (garbage collector) as GC, (program), (idle). Percentages are of the
 * profile's total and of its busy time (total minus (idle)).
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

/** The group a frame's self time is counted in. */
export function groupOf(frame: CallFrame, byFile = false): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(idle)" || functionName === "(program)" || functionName === "(root)") return functionName;
    return `(native) ${functionName || "anonymous"}`;
  }
  if (url.startsWith("node:")) {
    if (/^node:(internal\/)?http2/.test(url)) return "node:http2 internals";
    if (/^node:(internal\/)?(net|stream|streams\/|stream_base_commons)/.test(url)) return "node:net/streams internals";
    return "node: other internals";
  }
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = path.slice(nm + "/node_modules/".length).split("/");
    const pkg = rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
    if (pkg.startsWith("@connectrpc/")) return "@connectrpc/*";
    return pkg;
  }
  const m = /\/(src|gen|bench|test)\/(.*)$/.exec(path);
  if (m) {
    if (m[1] === "src") return byFile ? `src/${m[2]}` : "src/ (ours)";
    return `${m[1]}/`;
  }
  return path;
}

/** Self time in ms per profile node, from the samples and their time deltas. */
function selfTimes(p: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i] is the time from sample i-1 to sample i, so sample i lasts timeDeltas[i+1]
    // (as Chrome DevTools counts it); the last sample gets its own delta.
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  return self;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : " ".repeat(n - s.length) + s);

export function summarizeProfile(file: string, opts: { top?: number; byFile?: boolean } = {}): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const top = opts.top ?? 25;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const groups = new Map<string, number>();
  const fns = new Map<string, { ms: number; group: string }>();
  for (const [id, ms] of self) {
    const frame = byId.get(id)!.callFrame;
    const g = groupOf(frame, opts.byFile);
    groups.set(g, (groups.get(g) ?? 0) + ms);
    const where = frame.url ? `${frame.url.replace(/^file:\/\/.*?\/(node_modules|src|gen|bench)\//, "$1/")}:${frame.lineNumber + 1}` : "";
    const key = `${frame.functionName || "(anonymous)"}${where ? `  ${where}` : ""}`;
    const f = fns.get(key) ?? { ms: 0, group: groupOf(frame) };
    f.ms += ms;
    fns.set(key, f);
  }
  const idle = groups.get("(idle)") ?? 0;
  const busy = total - idle;
  const pct = (ms: number, of: number) => (of > 0 ? `${((100 * ms) / of).toFixed(1)} %` : "–");
  const out: string[] = [
    `profile: ${(total / 1000).toFixed(1)} s sampled (${p.samples.length} samples), busy ${(busy / 1000).toFixed(1)} s (all but (idle))`,
    "",
    `${pad("self time by group", 34)} ${lpad("ms", 9)} ${lpad("of total", 9)} ${lpad("of busy", 9)}`,
  ];
  for (const [g, ms] of [...groups].sort((a, b) => b[1] - a[1])) {
    out.push(`${pad(g, 34)} ${lpad(ms.toFixed(0), 9)} ${lpad(pct(ms, total), 9)} ${lpad(g === "(idle)" ? "" : pct(ms, busy), 9)}`);
  }
  out.push("", `top ${top} functions by self time (of busy):`);
  const list = [...fns].filter(([, f]) => f.group !== "(idle)").sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
  for (const [name, f] of list) out.push(`${lpad(f.ms.toFixed(0), 7)} ms ${lpad(pct(f.ms, busy), 7)}  ${pad(f.group, 24)} ${name}`);
  return out.join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const files = args.filter((a) => !a.startsWith("--"));
  if (files.length === 0) {
    process.stderr.write("usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top=25] [--files]\n");
    process.exit(2);
  }
  const topArg = args.find((a) => a.startsWith("--top="));
  for (const f of files) {
    if (files.length > 1) process.stdout.write(`\n${f}\n\n`);
    process.stdout.write(`${summarizeProfile(f, { top: topArg ? Number(topArg.slice(6)) : 25, byFile: args.includes("--files") })}\n`);
  }
}
