import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type DescMessage, type MessageInitShape, create, toBinary } from "@bufbuild/protobuf";
import { type Bursts, findTool, type Measurement, percentile, underLoad } from "./load.js";
import { median } from "./report.js";
import { removeDir, runTracked, tempDir } from "./proc.js";
import { REPO } from "./server.js";

/**
 * h2load (Debian `nghttp2-client`, written in C) as a unary gRPC load generator: one request
 * body — a protobuf-es message in the gRPC length-prefixed frame — POSTed over and over on
 * HTTP/2 with the gRPC headers.
 *
 * Why next to ghz: on a 2-core machine the load tool shares the cores with the server. ghz (Go)
 * spends about half a core at 4,000 calls/s; h2load about a tenth. With WORKERS=2 the server needs
 * both cores, so under ghz the second worker mostly waits for CPU that ghz holds, and the row
 * measures the tool, not the server.
 *
 * What h2load cannot do: read gRPC's status, which travels in trailers after an HTTP 200. So the
 * caller says how a success is counted (`H2loadCheck`):
 * - `countOk`: read before and after the run from the server's own counters (`/metrics`), and
 *   every succeeded HTTP call the server did not count as a success is an error;
 * - `okBytes`: where the server has no counter (Health/Check, the bare grpc-js server), the length
 *   of the DATA of one successful response (5-byte gRPC frame header + message), checked once
 *   with a real client before the row: a gRPC error is a trailers-only response (HTTP 200, no
 *   DATA), so the successes are h2load's DATA bytes received over `okBytes`, at most the HTTP 200s.
 */
export interface H2loadGrpcCall {
  /** host:port */
  target: string;
  /** e.g. /apikeys.v1.ApiKeyService/Authenticate */
  path: string;
  /** The request body: a message in the gRPC frame (grpcFrame). */
  body: Uint8Array;
  metadata?: Record<string, string>;
}

export interface H2loadLoad {
  /** Calls in flight: connections × streams per connection (rounded up). */
  concurrency: number;
  connections: number;
  seconds: number;
  /** Open loop: the total request rate (h2load's --rps is per connection: rate / connections each). */
  rps?: number;
}

export type H2loadCheck = { countOk: () => Promise<number> } | { okBytes: number };

/** The gRPC wire frame of one message: flag byte 0 (uncompressed), 4-byte big-endian length, bytes. */
export function grpcFrame<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Buffer {
  const bytes = toBinary(schema, create(schema, init));
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

export async function h2loadGrpc(
  serverPid: number,
  call: H2loadGrpcCall,
  load: H2loadLoad,
  check: H2loadCheck,
): Promise<Measurement> {
  const dir = tempDir("zpk-bench-h2load-");
  const body = join(dir, "request.bin");
  const log = join(dir, "requests.tsv");
  writeFileSync(body, call.body);
  const connections = Math.min(load.connections, load.concurrency);
  const headers = { "content-type": "application/grpc", te: "trailers", ...call.metadata };
  const args = [
    `--clients=${connections}`,
    `--max-concurrent-streams=${Math.ceil(load.concurrency / connections)}`,
    `--duration=${load.seconds}`,
    ...(load.rps ? [`--rps=${Math.max(1, Math.round(load.rps / connections))}`] : []),
    `--data=${body}`,
    `--log-file=${log}`,
    ...Object.entries(headers).map(([k, v]) => `--header=${k}: ${v}`),
    `http://${call.target}${call.path}`,
  ];
  try {
    const okBefore = "countOk" in check ? await check.countOk() : 0;
    const { result, server, loadCpuPct } = await underLoad(serverPid, () => runTracked(findTool("h2load"), args, { cwd: REPO }));
    const okAfter = "countOk" in check ? await check.countOk() : 0;
    const summary = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded/.exec(result.stdout);
    // h2load prints "finished in 4.00s", or "995.51ms" for a run under a second.
    const finished = /finished in ([\d.]+)(m?)s/.exec(result.stdout);
    const traffic = /^traffic: .*\((\d+)\) data/m.exec(result.stdout);
    if (result.code !== 0 || !summary || !finished || !traffic) throw new Error(`h2load failed (${result.code}): ${result.stderr}${result.stdout}`);
    const [requests, succeeded, seconds, dataBytes] = [Number(summary[1]), Number(summary[2]), Number(finished[1]) / (finished[2] ? 1000 : 1), Number(traffic[1])];
    const counted = "countOk" in check ? okAfter - okBefore : Math.floor(dataBytes / check.okBytes);
    // tab-separated: start (µs since epoch), HTTP status, µs until the end of the response
    const lines = readFileSync(log, "utf8").split("\n").filter(Boolean);
    const lat = lines.flatMap((l) => {
      const [, status, us] = l.split("\t");
      return status === "200" ? [Number(us) / 1000] : [];
    });
    const bursts = load.rps ? arrivalBursts(lines.map((l) => Number(l.split("\t")[0]))) : undefined;
    const okLat = new Float64Array(lat).sort();
    const notOk = Math.max(0, succeeded - counted);
    const failedHttp = requests - succeeded;
    const errors = failedHttp + notOk;
    const ok = succeeded - notOk;
    return {
      rps: seconds > 0 ? ok / seconds : 0,
      requests,
      errors,
      errorSample: [failedHttp ? `${failedHttp} failed at the HTTP level` : "", notOk ? `${notOk} answered without the expected gRPC result (${"countOk" in check ? "server counters" : "no response message"})` : ""]
        .filter(Boolean)
        .join("; "),
      p50Ms: percentile(okLat, 50),
      p99Ms: percentile(okLat, 99),
      p999Ms: percentile(okLat, 99.9),
      serverCpuPct: server.cpuPct,
      cpuUsPerReq: ok > 0 ? (server.cpuSeconds * 1e6) / ok : NaN,
      serverRssMb: server.peakRssMb,
      serverProcCpuPct: server.perProcessCpuPct,
      loadCpuPct,
      ...(bursts ? { bursts } : {}),
    };
  } finally {
    removeDir(dir);
  }
}

/** Requests sent within BURST_GAP_US of the one before form a burst. */
const BURST_GAP_US = 500;

/**
 * Groups request start times (µs) into bursts. h2load's rate mode sends from a timer that fires
 * at most every 10 ms (`rps_watcher.repeat = std::max(0.01, 1. / rps)` in h2load.cc) whatever
 * `--rps` asks for, so at thousands of requests a second each tick sends that tick's share at once.
 */
export function arrivalBursts(startsUs: number[]): Bursts | undefined {
  if (startsUs.length < 2) return undefined;
  const t = [...startsUs].sort((a, b) => a - b);
  const firsts: number[] = [t[0]!];
  const sizes: number[] = [];
  let size = 1;
  for (let i = 1; i < t.length; i++) {
    if (t[i]! - t[i - 1]! > BURST_GAP_US) {
      sizes.push(size);
      firsts.push(t[i]!);
      size = 1;
    } else size++;
  }
  sizes.push(size);
  const spacings = firsts.slice(1).map((f, i) => (f - firsts[i]!) / 1000);
  return { medianSize: median(sizes), medianSpacingMs: median(spacings) };
}
