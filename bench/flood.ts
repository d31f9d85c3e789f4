import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { findTool, protoset } from "./lib/load.js";
import { cpuBetween, removeDir, runTracked, sleep, snapshot, tempDir, totalRssMb, type TreeSnapshot } from "./lib/proc.js";
import { fmtInt, markdownTable } from "./lib/report.js";
import { badChecksumKey, type BenchServer, INTERNAL_TOKEN, REPO, rpc, startServer, type StoreKind, unknownKey } from "./lib/server.js";
import { commandLine, loadLine, machine, num, settings } from "./lib/settings.js";

/**
 * `npm run bench -- flood`: the flood check of issue 6. ghz sends Authenticate at full speed with
 * unknown keys (well-formed, valid checksum, never issued: a pool larger than the negative cache,
 * so most miss it) and malformed keys, alternately, for BENCH_FLOOD_SECONDS (default 600). Every
 * BENCH_FLOOD_SAMPLE_SECONDS (10) it samples the server's RSS and CPU and the audit trail (rows,
 * and the sum of their counts). Pass: RSS flat within 10 % after the first minute, audit rows
 * growing per aggregation interval rather than per request, every failure counted, no error.
 */

interface Sample {
  t: number;
  rssMb: number;
  cpuPct: number;
  auditRows: number;
  audited: number;
}

function malformed(i: number): string {
  const r = randomBytes(32).toString("base64url");
  switch (i % 4) {
    case 0:
      return badChecksumKey(); // right shape, wrong checksum
    case 1:
      return `zpk_live_${r}`; // no checksum
    case 2:
      return `zpk_prod_${r}AAAAAA`; // unknown environment
    default:
      return r; // not a key at all
  }
}

function parseSummary(text: string) {
  const count = Number(/Count:\s+(\d+)/.exec(text)?.[1] ?? NaN);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  const errSection = text.split("Error distribution:")[1] ?? "";
  const errorLines = errSection.split("\n").filter((l) => /^\s*\[\d+\]/.test(l));
  const errors = errorLines.reduce((a, l) => a + Number(/\[(\d+)\]/.exec(l)?.[1] ?? 0), 0);
  return { count, rps, errors, errorLines: errorLines.map((l) => l.trim()) };
}

async function floodOne(store: StoreKind): Promise<{ ok: boolean; text: string }> {
  const seconds = num("BENCH_FLOOD_SECONDS", 600);
  const every = num("BENCH_FLOOD_SAMPLE_SECONDS", 10);
  const settle = num("BENCH_FLOOD_SETTLE_SECONDS", Math.min(60, Math.floor(seconds / 3)));
  const concurrency = num("BENCH_FLOOD_CONCURRENCY", 64);
  const connections = num("BENCH_GRPC_CONNECTIONS", 4);
  const poolSize = num("BENCH_FLOOD_UNKNOWN_KEYS", 150_000);
  const workers = process.env.BENCH_FLOOD_WORKERS || "1";
  const aggregateMs = num("AUDIT_AGGREGATE_INTERVAL_MS", 10_000);

  const dir = tempDir("zpk-bench-flood-");
  const dataFile = join(dir, "keys.json");
  const data: { key: string }[] = [];
  for (let i = 0; i < poolSize; i++) data.push({ key: unknownKey(i % 2 ? "test" : "live") }, { key: malformed(i) });
  writeFileSync(dataFile, JSON.stringify(data));

  process.stderr.write(
    `\nflood on the ${store} store, WORKERS=${workers}: ${seconds} s, c=${concurrency}, ${connections} connections, ` +
      `${fmtInt(poolSize)} distinct unknown keys alternating with malformed ones; a sample every ${every} s\n`,
  );
  const server: BenchServer = await startServer({ store, workers, ...(process.env.MONGODB_URI ? { mongoUri: process.env.MONGODB_URI } : {}) });
  try {
    const u = await rpc(server, "Authenticate", { key: data[0]!.key });
    const m = await rpc(server, "Authenticate", { key: data[1]!.key });
    if (u.denialReason !== "DENIAL_REASON_UNKNOWN" || m.denialReason !== "DENIAL_REASON_MALFORMED") {
      throw new Error(`sanity check failed: unknown -> ${JSON.stringify(u)}, malformed -> ${JSON.stringify(m)}`);
    }
    const base = await server.auditStats();
    const samples: Sample[] = [];
    let prev: TreeSnapshot = snapshot(server.pid);
    const t0 = performance.now();
    const take = async () => {
      const snap = snapshot(server.pid);
      const audit = await server.auditStats();
      const s: Sample = {
        t: Math.round((snap.at - t0) / 1000),
        rssMb: totalRssMb(snap),
        cpuPct: cpuBetween(prev, snap).pct,
        auditRows: audit.rows - base.rows,
        audited: audit.counted - base.counted,
      };
      prev = snap;
      samples.push(s);
      process.stderr.write(
        `  t=${String(s.t).padStart(4)} s  RSS ${s.rssMb.toFixed(1)} MB  CPU ${Math.round(s.cpuPct)} %  audit rows +${fmtInt(s.auditRows)}  audited failures +${fmtInt(s.audited)}\n`,
      );
    };
    await take();

    const ghzRun = runTracked(
      findTool("ghz"),
      [
        "--insecure",
        `--protoset=${protoset()}`,
        "--call=apikeys.v1.ApiKeyService.Authenticate",
        `--data-file=${dataFile}`,
        `--metadata=${JSON.stringify({ authorization: `Bearer ${INTERNAL_TOKEN}` })}`,
        `--concurrency=${concurrency}`,
        `--connections=${Math.min(connections, concurrency)}`,
        `--duration=${seconds}s`,
        "--duration-stop=ignore",
        "--timeout=10s",
        "--format=summary",
        `127.0.0.1:${server.grpcPort}`,
      ],
      { cwd: REPO },
    );
    let done = false;
    ghzRun.then(() => (done = true), () => (done = true));
    let next = t0 + every * 1000;
    while (!done) {
      await Promise.race([ghzRun, sleep(Math.max(0, next - performance.now()))]);
      if (done) break;
      if (!server.alive()) throw new Error(`the server died during the flood:\n${server.output().slice(-4000)}`);
      await take();
      next += every * 1000;
    }
    const result = await ghzRun;
    const summary = parseSummary(result.stdout);
    if (!Number.isFinite(summary.count)) throw new Error(`ghz failed (${result.code}): ${result.stderr}${result.stdout}`);
    const aliveAtEnd = server.alive();
    const duringCount = samples.length;
    await take();
    const exitCode = await server.stop();
    const final = await server.auditStats();
    const problems = server.problems();

    // Verdicts.
    // RSS: the band of the samples taken under load after the settle time, and its drift (the
    // mean of the last third of those samples against the first third): a GC sawtooth widens the
    // band, a leak shows as drift.
    const after = samples.slice(0, duringCount).filter((s) => s.t >= settle && s.t > 0);
    const rssMin = Math.min(...after.map((s) => s.rssMb));
    const rssMax = Math.max(...after.map((s) => s.rssMb));
    const spread = after.length ? rssMax / rssMin - 1 : NaN;
    const third = Math.max(1, Math.floor(after.length / 3));
    const mean = (xs: Sample[]) => xs.reduce((a, x) => a + x.rssMb, 0) / xs.length;
    const drift = after.length >= 2 ? mean(after.slice(-third)) / mean(after.slice(0, third)) - 1 : NaN;
    const bandOk = after.length >= 2 && spread <= 0.1;
    const driftOk = after.length >= 2 && Math.abs(drift) <= 0.1;
    const rowsAdded = final.rows - base.rows;
    const audited = final.counted - base.counted;
    const intervals = Math.ceil((seconds * 1000) / aggregateMs);
    const workerCount = workers === "auto" ? (await import("node:os")).availableParallelism() : Number(workers);
    const rowBound = 10 * workerCount * (intervals + 2);
    const auditOk = rowsAdded <= rowBound;
    const countedRatio = summary.count > 0 ? audited / summary.count : NaN;
    const countedOk = countedRatio >= 0.99;
    const errorsOk = summary.errors === 0 && aliveAtEnd && exitCode === 0 && problems.length === 0;
    const ok = bandOk && driftOk && auditOk && countedOk && errorsOk;
    const yes = (b: boolean) => (b ? "✓" : "✗ FAIL");
    // Memory grows legitimately until the negative cache holds as many unknown digests as it may.
    const negativeCache = num("KEY_CACHE_NEGATIVE_SIZE", 100_000);
    const fillSeconds = Math.min(poolSize, negativeCache) / Math.max(1, summary.rps / 2);
    const fillNote =
      fillSeconds > settle
        ? ` At ${fmtInt(summary.rps / 2)} unknown keys/s the negative cache (${fmtInt(negativeCache)} entries) fills only after ` +
          `~${Math.round(fillSeconds)} s, later than the settle time (${settle} s): RSS may still be growing toward its bound there.`
        : "";

    const lines = [
      `## Flood: ${store} store, WORKERS=${workers}`,
      "",
      `${fmtInt(summary.count)} Authenticate calls in ${seconds} s (${fmtInt(summary.rps)} req/s), c=${concurrency}, ` +
        `half unknown keys (${fmtInt(poolSize)} distinct), half malformed.${fillNote}`,
      "",
      `- RSS under load after the first ${settle} s (${after.length} samples): ${rssMin.toFixed(1)}–${rssMax.toFixed(1)} MB, ` +
        `band ${(spread * 100).toFixed(1)} % of the minimum (≤ 10 %) ${yes(bandOk)}`,
      `- RSS drift, mean of the last third of those samples vs the first third: ${drift >= 0 ? "+" : ""}${(drift * 100).toFixed(1)} % (within ±10 %) ${yes(driftOk)}`,
      `- audit rows added: ${fmtInt(rowsAdded)} over ${intervals} aggregation intervals of ${aggregateMs / 1000} s ` +
        `(${(rowsAdded / intervals).toFixed(1)} per interval; bound used: ≤ ${fmtInt(rowBound)} = 10 × workers × (intervals + 2)) — ` +
        `${fmtInt(summary.count / Math.max(1, rowsAdded))} requests per row ${yes(auditOk)}`,
      `- failures counted in the audit trail: ${fmtInt(audited)} of ${fmtInt(summary.count)} answered calls (${countedRatio.toFixed(4)}; ≥ 0.99) ${yes(countedOk)}`,
      `- errors: ghz ${summary.errors}${summary.errorLines.length ? ` (${summary.errorLines.slice(0, 3).join("; ")})` : ""}, ` +
        `server ${aliveAtEnd ? "alive to the end" : "DIED"}, exit code on SIGTERM ${exitCode}, ${problems.length} warn/error log lines ${yes(errorsOk)}`,
      ...problems.slice(0, 10).map((l) => `    ${l.slice(0, 300)}`),
      "",
      markdownTable(
        ["t s", "server RSS MB", "server CPU %", "audit rows (+)", "audited failures (+)", "audited/s"],
        samples.map((s, i) => {
          const p = samples[i - 1];
          const rate = p && s.t > p.t ? (s.audited - p.audited) / (s.t - p.t) : NaN;
          return [String(s.t), s.rssMb.toFixed(1), String(Math.round(s.cpuPct)), fmtInt(s.auditRows), fmtInt(s.audited), fmtInt(rate)];
        }),
      ),
      "",
      "The last sample is taken after the load stopped. audited/s trails the calls by up to one aggregation interval: " +
        "failures are counted in memory and written once per interval.",
    ];
    return { ok, text: lines.join("\n") };
  } finally {
    await server.stop();
    await server.dispose();
    removeDir(dir);
  }
}

export async function flood(): Promise<void> {
  const loadStart = loadavg();
  const header = machine(["ghz"]);
  process.stderr.write(`bench flood: ${commandLine()}\n${header.join("\n")}\n`);
  const parts: string[] = [];
  let ok = true;
  for (const store of settings().stores) {
    const r = await floodOne(store);
    ok &&= r.ok;
    parts.push(r.text);
  }
  const text = [
    "# zpk flood check",
    "",
    "Written by the latest `npm run bench -- flood` (bench/flood.ts); see bench/README.md.",
    "",
    `- command: \`${commandLine()}\``,
    ...header,
    loadLine(loadStart, loadavg()),
    `- verdict: ${ok ? "PASS" : "FAIL"}`,
    "",
    ...parts.flatMap((p) => [p, ""]),
  ].join("\n");
  process.stdout.write(`\n${text}`);
  const file = join(REPO, "bench/RESULTS-flood.md");
  writeFileSync(file, text);
  process.stderr.write(`\nbench flood: ${ok ? "PASS" : "FAIL"}; written to ${file}\n`);
  if (!ok) process.exitCode = 1;
}
