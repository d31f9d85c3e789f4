import * as http from "node:http";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { grpcJsClient } from "../helpers/rpc-clients.js";
import { sleep, startServer, tempDir } from "../helpers/server.js";

/**
 * Graceful shutdown under load (issue 7 "Graceful shutdown", SPEC §9), embedded store.
 *
 * A client keeps ~20 requests in flight — 10 REST `GET /v1/api-keys` workers on HTTP/1.1
 * keep-alive connections and 10 native-gRPC `Authenticate` (charge 0) workers on GRPC_PORT, all
 * with one customer key — and the server gets SIGTERM in the middle of it.
 *
 * What counts as in flight is decided with the server's own record, not guessed: every request
 * carries a unique `x-request-id`, the server logs one line per handled RPC with that id, and it
 * logs the moment it begins shutting down (same clock: same machine). Then:
 * - no request the server handled may lose its answer, and every answer is the normal one
 *   (200 / valid) or a connection-level refusal (refused, reset, UNAVAILABLE) — never a 5xx;
 * - a REST request sent on an open HTTP/1.1 connection before shutdown began (by at least 20 ms)
 *   is in flight and must be answered, not reset (gRPC calls refused by GOAWAY are reported);
 * - a new connection after shutdown began is refused (requests started then may fail).
 *
 * Then: exit code 0 within SHUTDOWN_TIMEOUT_MS + 3 s of SIGTERM, and the usage counters buffered
 * in memory (USAGE_FLUSH_INTERVAL_MS = 60 s, so only the shutdown flush writes them) are on disk:
 * a restart on the same DATA_DIR shows total_requests >= the successful authenticated calls the
 * client saw.
 */
const SHUTDOWN_TIMEOUT_MS = 3000;
const REST_WORKERS = 10;
const GRPC_WORKERS = 10;

// eslint-disable-next-line no-console
const log = (msg: string) => console.log(`[faults-shutdown] ${msg}`);

interface Attempt {
  id: string;
  kind: "rest" | "grpc";
  start: number;
  end: number;
  ok: boolean;
  detail: string;
}

function restGet(agent: http.Agent, port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "GET", headers, agent, timeout: 15_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("client timeout (15 s)")));
    req.on("error", reject);
    req.end();
  });
}

describe("graceful shutdown under load", () => {
  it("SIGTERM with ~20 requests in flight: every handled request gets its normal answer, exit 0 within the deadline, buffered usage flushed", async () => {
    const dataDir = tempDir();
    const env = {
      DATA_DIR: dataDir,
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      USAGE_FLUSH_INTERVAL_MS: "60000",
      RATE_LIMIT_CAPACITY: "1000000",
      RATE_LIMIT_REFILL_PER_SEC: "1000000",
    };
    const server = await startServer(env);
    const customerId = uuid();
    const key = await issueAsInternal(server, customerId, { name: "loaded" });
    const agent = new http.Agent({ keepAlive: true, maxSockets: REST_WORKERS });
    const grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
    const internal = { authorization: `Bearer ${server.internalToken}` };

    const attempts: Attempt[] = [];
    let exited = false;
    let termAt = Infinity;
    const exitP = new Promise<{ code: number | null; at: number }>((resolve) =>
      server.process.once("exit", (code) => {
        exited = true;
        resolve({ code, at: Date.now() });
      }),
    );
    let seq = 0;

    async function restWorker(w: number) {
      while (!exited) {
        const id = `sd-rest-${w}-${seq++}`;
        const start = Date.now();
        let ok = false;
        let detail = "";
        try {
          const res = await restGet(agent, server.port, "/v1/api-keys", { authorization: `Bearer ${key.secret}`, "x-request-id": id });
          ok = res.status === 200;
          detail = ok ? "200" : `${res.status} ${res.body.slice(0, 200)}`;
        } catch (e) {
          detail = `${(e as NodeJS.ErrnoException).code ?? ""} ${(e as Error).message}`;
        }
        attempts.push({ id, kind: "rest", start, end: Date.now(), ok, detail });
        if (!ok) await sleep(20);
      }
    }
    async function grpcWorker(w: number) {
      while (!exited) {
        const id = `sd-grpc-${w}-${seq++}`;
        const start = Date.now();
        const r = await grpc.call("authenticate", { key: key.secret }, { ...internal, "x-request-id": id });
        const ok = r.ok && r.res.valid;
        const detail = r.ok ? (r.res.valid ? "valid" : `denied ${r.res.denialReason}`) : `code ${r.code} ${r.message}`;
        attempts.push({ id, kind: "grpc", start, end: Date.now(), ok, detail });
        if (!ok) await sleep(20);
      }
    }

    const workers = [
      ...Array.from({ length: REST_WORKERS }, (_, w) => restWorker(w)),
      ...Array.from({ length: GRPC_WORKERS }, (_, w) => grpcWorker(w)),
    ];
    await sleep(1500); // load established, every worker busy
    termAt = Date.now();
    server.process.kill("SIGTERM");

    // a new connection once shutdown has begun (the server logged it) is refused: the listener is closed
    const shutdownLine = () => server.output().split("\n").find((l) => l.includes("shutting down"));
    while (!shutdownLine() && !exited && Date.now() - termAt < 10_000) await sleep(5);
    const shutdownBeganMs = shutdownLine() ? (JSON.parse(shutdownLine()!) as { time: number }).time - termAt : null;
    await sleep(20);
    const newConn = await new Promise<string>((resolve) => {
      const sock = net.connect(server.port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve("accepted");
      });
      sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });

    const { code, at: exitAt } = await Promise.race([
      exitP,
      sleep(SHUTDOWN_TIMEOUT_MS + 15_000).then(() => ({ code: -999, at: Date.now() })),
    ]);
    if (code === -999) await server.kill();
    exited = true;
    await Promise.all(workers);
    agent.destroy();
    grpc.close();

    // what the server handled: one log line per RPC with the request id
    const handled = new Map<string, string>();
    for (const line of server.output().split("\n")) {
      if (!line.includes('"requestId":"sd-')) continue;
      try {
        const l = JSON.parse(line) as { requestId?: string; code?: string | number; msg?: string };
        if (l.requestId && (l.msg === "rpc" || l.msg === "rpc failed")) handled.set(l.requestId, `${l.msg} ${l.code}`);
      } catch {}
    }

    // The server began shutting down when it logged so (its clock is ours: same machine).
    const beganAt = termAt + (shutdownBeganMs ?? 0);
    const MARGIN_MS = 20; // a request "started" this long before had surely been written to its connection
    const sentBefore = attempts.filter((a) => a.start <= beganAt - MARGIN_MS);
    // The load's own sanity check: requests outstanding at the moment shutdown began. A request
    // takes ~20 ms here, about MARGIN_MS, so this counts every overlapping one, not only those
    // sent MARGIN_MS before (that stricter set is what the REST no-reset check below uses).
    const inFlightAtShutdown = attempts.filter((a) => a.start <= beganAt && a.end >= beganAt);
    const droppedInFlight = sentBefore.filter((a) => !a.ok);
    const after = attempts.filter((a) => a.start > beganAt);
    const lostAnswers = attempts.filter((a) => handled.has(a.id) && !a.ok);
    const badAnswers = attempts.filter((a) => !a.ok && !/ECONNREFUSED|ECONNRESET|socket hang up|EPIPE|code 14 /.test(a.detail));
    const okCount = attempts.filter((a) => a.ok).length;
    const exitMs = exitAt - termAt;
    const describeDropped = (xs: Attempt[]) =>
      xs.map((a) => `${a.kind} sent ${beganAt - a.start} ms before shutdown began, failed +${a.end - beganAt} ms: ${a.detail.slice(0, 40)}`).join(" | ") || "-";
    log(
      `requests: ${attempts.length} total, ${okCount} ok; shutdown began ${shutdownBeganMs} ms after SIGTERM; ` +
        `${inFlightAtShutdown.length} outstanding when it began (${inFlightAtShutdown.filter((a) => a.ok).length} answered normally); ` +
        `dropped although sent before it: ${droppedInFlight.length} (${describeDropped(droppedInFlight)}); ` +
        `${after.length} started after it (${after.filter((a) => a.ok).length} ok); handled by the server: ${handled.size}; ` +
        `a new connection after it: ${newConn}; exit ${code} ${exitMs} ms after SIGTERM`,
    );

    expect(code, server.output().slice(-3000)).toBe(0);
    expect(exitMs, `exit took ${exitMs} ms`).toBeLessThan(SHUTDOWN_TIMEOUT_MS + 3000);
    expect(shutdownBeganMs, "the server never logged that it began shutting down").not.toBeNull();
    expect(inFlightAtShutdown.length, "the load did not keep requests in flight").toBeGreaterThanOrEqual(3);
    expect(lostAnswers.map((a) => `${a.id}: ${a.detail} (server: ${handled.get(a.id)})`), "requests the server handled whose answer was lost").toEqual([]);
    expect(badAnswers.map((a) => `${a.id}: ${a.detail}`), "answers other than the normal one or a connection-level refusal").toEqual([]);
    for (const a of attempts.filter((x) => x.ok)) {
      expect(handled.has(a.id), `${a.id} was answered but the server never logged it`).toBe(true);
    }
    expect(newConn, "a new connection after shutdown began was accepted").not.toBe("accepted");
    // HTTP/1.1 requests already sent on open keep-alive connections when shutdown began are in
    // flight: they must be answered, not reset (HTTP/1.1 cannot tell the client "not processed,
    // retry"). Soft, so the usage check below still runs and reports. gRPC calls refused by the
    // HTTP/2 GOAWAY (UNAVAILABLE, never handled) are protocol-level "not processed" refusals the
    // client may retry: reported above, not failed.
    expect
      .soft(describeDropped(droppedInFlight.filter((a) => a.kind === "rest")), "REST requests sent before shutdown began were reset instead of answered")
      .toBe("-");

    // usage buffered in memory before SIGTERM was flushed by the shutdown
    const again = await startServer(env);
    try {
      const got = await rest(again, "GET", `/v1/api-keys/${key.id}?customer_id=${customerId}`, { key: again.internalToken });
      expect(got.status).toBe(200);
      log(`usage after restart: total_requests ${got.body.total_requests}; client saw ${okCount} successful authenticated calls; server handled ${handled.size}`);
      expect(got.body.total_requests, "buffered usage counters were not flushed on SIGTERM").toBeGreaterThanOrEqual(okCount);
      expect(got.body.total_requests).toBeLessThanOrEqual(handled.size);
      expect(got.body.last_used_at).not.toBeNull();
    } finally {
      await again.stop();
    }
  }, 60_000);
});
