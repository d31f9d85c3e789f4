import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { kPeerAddress } from "../../service/call-context.js";
import { HEALTH_SERVICES, type HealthState } from "../health-state.js";

/**
 * Bounds on `Health/Watch` on the public port. A Watch stream is held open by the server for as
 * long as the client likes, so without them a few clients could hold enough streams (and
 * connections) to fill the connection cap. Per process.
 */
export interface WatchLimits {
  /** Concurrent Watch streams from one client address; more are refused with RESOURCE_EXHAUSTED. */
  maxPerClient: number;
  /** Concurrent Watch streams in all. */
  maxTotal: number;
  /** A Watch stream ends with OK after this long; the client re-watches (as gRPC health clients do). */
  maxLifetimeMs: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = { maxPerClient: 4, maxTotal: 1000, maxLifetimeMs: 300_000 };

/** `grpc.health.v1.Health` on `PORT` (connect-node), mirroring the grpc-js one on `GRPC_PORT`. */
export function healthRoutes(state: HealthState, limits: WatchLimits = DEFAULT_WATCH_LIMITS) {
  const status = () => (state.isServing ? Status.SERVING : Status.NOT_SERVING);
  const known = (service: string) => {
    if (!HEALTH_SERVICES.includes(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
  };
  const byClient = new Map<string, number>();
  let total = 0;
  /** Takes a Watch slot for the caller's address, or refuses; returns the release function. */
  const admit = (ctx: HandlerContext): (() => void) => {
    const client = ctx.values.get(kPeerAddress) ?? "unknown";
    const mine = byClient.get(client) ?? 0;
    if (mine >= limits.maxPerClient || total >= limits.maxTotal) {
      throw new ConnectError(
        mine >= limits.maxPerClient
          ? `too many Health/Watch streams from this address (at most ${limits.maxPerClient} at once); use Check, or reuse a stream`
          : `too many Health/Watch streams (at most ${limits.maxTotal} at once); use Check`,
        Code.ResourceExhausted,
      );
    }
    byClient.set(client, mine + 1);
    total++;
    return () => {
      total--;
      const left = (byClient.get(client) ?? 1) - 1;
      if (left > 0) byClient.set(client, left);
      else byClient.delete(client);
    };
  };
  return (router: ConnectRouter) =>
    router.service(Health, {
      check(req) {
        known(req.service);
        return { status: status() };
      },
      async *watch(req, ctx) {
        const release = admit(ctx);
        const changes: boolean[] = [];
        let wake = () => {};
        const stop = state.watch((serving) => {
          changes.push(serving);
          wake();
        });
        let expired = false;
        const lifetime = setTimeout(() => {
          expired = true;
          wake();
        }, limits.maxLifetimeMs);
        ctx.signal.addEventListener("abort", () => wake());
        try {
          const current = HEALTH_SERVICES.includes(req.service) ? status() : Status.SERVICE_UNKNOWN;
          yield { status: current };
          if (current === Status.SERVICE_UNKNOWN) return;
          while (!ctx.signal.aborted && !expired) {
            if (changes.length === 0) await new Promise<void>((r) => (wake = r));
            while (changes.length) yield { status: changes.shift() ? Status.SERVING : Status.NOT_SERVING };
          }
          // Ended by the caller's deadline or cancel: answer that status (DEADLINE_EXCEEDED,
          // CANCELED), never OK, which only the lifetime bound ends with.
          if (ctx.signal.aborted && !expired) throw ConnectError.from(ctx.signal.reason);
        } finally {
          clearTimeout(lifetime);
          stop();
          release();
        }
      },
      list() {
        return { statuses: Object.fromEntries(HEALTH_SERVICES.map((s) => [s, { status: status() }])) };
      },
    });
}
