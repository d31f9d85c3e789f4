import type { Measurement } from "./load.js";

/** One line of the results table. */
export interface Row {
  /** What is measured, e.g. "Authenticate valid, charge=0". */
  name: string;
  /** "GRPC_PORT (grpc-js)", "PORT (connect-node)", "PORT (HTTP/1.1)". */
  port: string;
  concurrency: number;
  m: Measurement;
  /** The no-op row this one is compared with, and the ratio of throughputs. */
  baseline?: string;
  ratio?: number;
  /** The row's req/s in each alternating round (req/s above is their median). */
  roundsRps?: number[];
  /** Median over the rounds of the row's req/s over the bare grpc-js limit's in the same round. */
  limitRatio?: number;
  /** Over Health/Check sent the same metadata (authorization) as Authenticate, same alternation. */
  mdRatio?: number;
  /** e.g. "≥ 0.8×"; pass is undefined when there is no target. */
  target?: string;
  pass?: boolean;
  note?: string;
}

/** Median over the alternating rounds of `a`'s req/s over `b`'s in the same round (rows of one alternation). */
export const roundRatio = (a: Row, b: Row) => median(a.roundsRps!.map((x, i) => x / b.roundsRps![i]!));

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
export const fmtMs = (n: number) => (!Number.isFinite(n) ? "–" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
export const fmtPct = (n: number) => (Number.isFinite(n) ? `${Math.round(n)}` : "–");
export const fmtRatio = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "" : `${n.toFixed(2)}×`);
export const mark = (pass: boolean | undefined) => (pass === undefined ? "" : pass ? "✓" : "✗ miss");

export function markdownTable(header: string[], lines: string[][], leftColumns = 1): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map((h, i) => (i < leftColumns ? "---" : "---:")).join("|")}|`,
    ...lines.map((l) => `| ${l.map(esc).join(" | ")} |`),
  ].join("\n");
}

export function rowsTable(rows: Row[], unrelated = "(no-op)"): string {
  return markdownTable(
    ["row", "port", "c", "req/s", "req/s per round", "p50 ms", "p99 ms", "p99.9 ms", "errors", "server CPU %", "CPU µs/req", "server RSS MB", "load tool CPU %", "ratio", "of the limit", "target"],
    rows.map((r) => [
      r.name + (r.note ? ` (${r.note})` : ""),
      r.port,
      String(r.concurrency),
      fmtInt(r.m.rps),
      r.roundsRps && r.roundsRps.length > 1 ? r.roundsRps.map(fmtInt).join(" / ") : "",
      fmtMs(r.m.p50Ms),
      fmtMs(r.m.p99Ms),
      fmtMs(r.m.p999Ms),
      r.m.errors ? `${fmtInt(r.m.errors)}: ${r.m.errorSample.slice(0, 80)}` : "0",
      fmtPct(r.m.serverCpuPct),
      Number.isFinite(r.m.cpuUsPerReq) ? r.m.cpuUsPerReq.toFixed(0) : "–",
      fmtInt(r.m.serverRssMb),
      fmtPct(r.m.loadCpuPct),
      r.baseline ? `${fmtRatio(r.ratio)} of ${r.baseline}${r.mdRatio !== undefined ? ` (${fmtRatio(r.mdRatio)} of it with the same metadata)` : ""}` : unrelated,
      r.limitRatio !== undefined ? fmtRatio(r.limitRatio) : "",
      r.target ? `${r.target} ${mark(r.pass)}` : "",
    ]),
    2,
  );
}

/** One progress line on stderr while the bench runs. */
export function progress(section: string, r: Row): void {
  const m = r.m;
  process.stderr.write(
    `  ${section} · ${r.name} · ${r.port} · c=${r.concurrency}: ${fmtInt(m.rps)} req/s, p50 ${fmtMs(m.p50Ms)} / p99 ${fmtMs(m.p99Ms)} / p99.9 ${fmtMs(m.p999Ms)} ms, ` +
      `server CPU ${fmtPct(m.serverCpuPct)} % (${m.serverProcCpuPct.map(fmtPct).join("+")}), RSS ${fmtInt(m.serverRssMb)} MB, tool CPU ${fmtPct(m.loadCpuPct)} %` +
      (m.errors ? `, ${m.errors} errors (${m.errorSample})` : "") +
      (r.ratio !== undefined ? `, ${fmtRatio(r.ratio)} of ${r.baseline}` : "") +
      (r.limitRatio !== undefined ? `, ${fmtRatio(r.limitRatio)} of the limit` : "") +
      "\n",
  );
}

/** Median of numbers (the mean of the middle two for an even count); NaN for none. */
export function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
