import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import type { Metrics } from "../observability/metrics.js";
import { echoRequestId, kCallerPrefix, requestIdOf, sentRequestId } from "./call-context.js";
import { toConnectError } from "./to-connect-error.js";

/**
 * RPCs called on every request of a gateway: logged at debug, not info, and a success carries
 * no response headers but an `x-request-id` the caller sent: a headers frame with our metadata
 * was a visible share of such a call. The id we made stays in the log line and the audit trail.
 */
const HOT = new Set(["Authenticate", "ChargeRateLimit"]);

type Impl = ServiceImpl<typeof ApiKeyService>;

/** A unary call as transports make it: a request and the call's context. */
export type Call<Req, Res> = (req: Req, ctx: HandlerContext) => Promise<Res>;

/** Wraps calls with what instrumentCalls gives every one of them. */
export interface Instrumentation {
  /** Every method of the service implementation. */
  service(impl: Impl): Impl;
  /** One more way into an RPC (REST's record-answering ListKeys), wrapped exactly like the method. */
  call<Req, Res>(fn: Call<Req, Res>): Call<Req, Res>;
  /**
   * Resolves once no call is running, or after `ms`. Shutdown waits for it before the store
   * closes: a transport counts a call as done when its client has gone, but the call may still be
   * writing (an issue whose client hung up), and closing the store under it would fail it halfway.
   */
  settled(ms: number): Promise<void>;
}

/**
 * What every call of every transport gets around the service implementation, like an
 * interceptor: the request id (whether to echo it in `x-request-id` is decided here alone),
 * every failure through toConnectError (the one exit for errors), one log line and the request
 * metrics. The implementation itself (api-key-service.ts) holds only what each RPC does.
 */
export function instrumentCalls(deps: { log: Logger; metrics: Metrics }): Instrumentation {
  const { log, metrics } = deps;
  let running = 0;
  const idle: (() => void)[] = [];

  async function run(ctx: HandlerContext, call: () => Promise<unknown>): Promise<unknown> {
    const started = performance.now();
    const rpc = ctx.method.name;
    const hot = HOT.has(rpc);
    // Echoed on every answer but a hot success with no id from the caller. A hot call makes an id
    // of its own only when something needs it (an audit event, an error, a log line).
    if (!hot || sentRequestId(ctx)) echoRequestId(ctx);
    let code = "ok";
    running++;
    try {
      return await call();
    } catch (err) {
      echoRequestId(ctx);
      const ce = toConnectError(err, ctx, log);
      code = Code[ce.code] ?? String(ce.code);
      throw ce;
    } finally {
      if (--running === 0) for (const wake of idle.splice(0)) wake();
      const seconds = (performance.now() - started) / 1000;
      const transport = ctx.protocolName;
      const series = seriesKey(rpc, transport);
      metrics.requests.inc(code === "ok" ? series.ok : `${series.method} ${code}`, () => ({ method: rpc, transport, code }));
      metrics.duration.observe(series.method, () => ({ method: rpc, transport }), seconds);
      const level = hot && code === "ok" ? "debug" : "info";
      // The line is built only when it will be written: hot RPCs run at LOG_LEVEL=info by default.
      if (log.isLevelEnabled(level)) {
        const line = { rpc, transport, requestId: requestIdOf(ctx), code, ms: +(seconds * 1000).toFixed(2), keyPrefix: ctx.values.get(kCallerPrefix) ?? undefined };
        log[level](line, code === "ok" ? "rpc" : "rpc failed");
      }
    }
  }

  /** Metric series keys per (transport, method), made once: a hot call builds no strings for them. */
  const keys = new Map<string, Map<string, { method: string; ok: string }>>();
  function seriesKey(rpc: string, transport: string) {
    let byRpc = keys.get(transport);
    if (!byRpc) keys.set(transport, (byRpc = new Map()));
    let k = byRpc.get(rpc);
    if (!k) byRpc.set(rpc, (k = { method: `${rpc} ${transport}`, ok: `${rpc} ${transport} ok` }));
    return k;
  }

  const call = <Req, Res>(fn: Call<Req, Res>): Call<Req, Res> => (req, ctx) => run(ctx, () => fn(req, ctx)) as Promise<Res>;
  return {
    call,
    settled(ms) {
      if (running === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    service(impl) {
      const methods = impl as unknown as Record<string, Call<unknown, unknown>>;
      const wrapped: Record<string, Call<unknown, unknown>> = {};
      for (const method of ApiKeyService.methods) {
        const fn = methods[method.localName];
        if (!fn) throw new Error(`the service implements no ${method.name}`);
        wrapped[method.localName] = call(fn);
      }
      return wrapped as unknown as Impl;
    },
  };
}
