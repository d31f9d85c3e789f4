/**
 * The REST list's row of `npm run bench -- in-process`: what one `GET /v1/api-keys` costs **our**
 * code from PORT's fallback handler to the finished answer, in one process with no socket. The
 * real service (src/app.ts's createService: the embedded store in a temporary directory, the
 * domain, credentials, the call instrumentation) and the real fallback and REST handler answer
 * stand-ins for node's request and response that record what is written; 10 keys of one customer,
 * listed with the first of them, as the bench's list row does. Requests go 16 to a turn of the
 * event loop (the answers are written at its end, transport/http/coalesced-end.ts), as under load.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { createService } from "../src/app.js";
import { loadConfig } from "../src/config/config.js";
import { nodeContextValues } from "../src/transport/connect/routes.js";
import { createFallback } from "../src/transport/http/fallback.js";
import type { NodeRequest, NodeResponse } from "../src/transport/http/json-response.js";
import { createRestHandler } from "../src/transport/rest/rest-handler.js";
import { callImpl } from "../test/helpers/unit-service.js";
import { HUGE_LIMIT, INTERNAL_TOKEN } from "./lib/server.js";

const PER_TURN = 16;

/** µs per list for each of `rounds` rounds of about `atLeast` lists, in whole turns (after a warm-up round). */
export async function inProcessList(atLeast: number, rounds: number): Promise<{ us: number[]; status: number; bytes: number }> {
  const calls = Math.max(1, Math.ceil(atLeast / PER_TURN)) * PER_TURN;
  const dir = mkdtempSync(join(tmpdir(), "zpk-bench-in-process-"));
  const log = pino({ level: "silent" });
  const config = loadConfig({ DATA_DIR: dir, INTERNAL_TOKEN, RATE_LIMIT_CAPACITY: String(HUGE_LIMIT), RATE_LIMIT_REFILL_PER_SEC: String(HUGE_LIMIT), LOG_LEVEL: "silent" });
  const svc = await createService(config, log);
  try {
    const customerId = "11111111-1111-4111-8111-111111111111";
    const internal = `Bearer ${INTERNAL_TOKEN}`;
    await callImpl(svc.impl, "setRateLimit", { customerId, capacity: HUGE_LIMIT, refillPerSecond: HUGE_LIMIT }, internal);
    let secret = "";
    for (let i = 0; i < 10; i++) {
      const { res } = await callImpl(svc.impl, "issueKey", { customerId, name: `bench-${i}` }, internal);
      if (i === 0) secret = res.secret ?? "";
    }
    const rest = createRestHandler({ impl: svc.impl, listKeyRecords: svc.listKeyRecords }, { bodyLimitBytes: config.BODY_LIMIT_BYTES, contextValues: nodeContextValues, log });
    const fallback = createFallback({ rest, ready: async () => {}, log, isDraining: () => false });
    // What the fallback and the REST handler read of node's request and call on its response.
    let status = 0;
    let bytes = 0;
    let ended = 0;
    const req = {
      method: "GET",
      url: "/v1/api-keys",
      headers: { host: "127.0.0.1", authorization: `Bearer ${secret}`, "user-agent": "wrk" },
      socket: { remoteAddress: "127.0.0.1" },
      on: () => req,
      once: () => req,
    } as unknown as NodeRequest;
    const res = {
      headersSent: false,
      writableFinished: false,
      writeHead: (s: number) => ((status = s), res),
      end: (body?: Uint8Array) => ((bytes = body?.byteLength ?? 0), ended++),
      on: () => res,
    } as unknown as NodeResponse;
    const us: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < calls; i += PER_TURN) {
        for (let j = 0; j < PER_TURN; j++) fallback(req, res);
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (round > 0) us.push(Number(process.hrtime.bigint() - started) / 1e3 / calls);
    }
    if (ended < calls || status !== 200) throw new Error(`the in-process list answered ${status} (${ended} of ${calls} answers written)`);
    return { us, status, bytes };
  } finally {
    await svc.domain.usage.flush();
    await svc.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
