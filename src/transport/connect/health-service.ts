import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { HEALTH_SERVICES, type HealthState } from "../health-state.js";

/** `grpc.health.v1.Health` on `PORT` (connect-node), mirroring the grpc-js one on `GRPC_PORT`. */
export function healthRoutes(state: HealthState) {
  const status = () => (state.isServing ? Status.SERVING : Status.NOT_SERVING);
  const known = (service: string) => {
    if (!HEALTH_SERVICES.includes(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
  };
  return (router: ConnectRouter) =>
    router.service(Health, {
      check(req) {
        known(req.service);
        return { status: status() };
      },
      async *watch(req, ctx) {
        const current = HEALTH_SERVICES.includes(req.service) ? status() : Status.SERVICE_UNKNOWN;
        yield { status: current };
        if (current === Status.SERVICE_UNKNOWN) return;
        const changes: boolean[] = [];
        let wake = () => {};
        const stop = state.watch((serving) => {
          changes.push(serving);
          wake();
        });
        ctx.signal.addEventListener("abort", () => wake());
        try {
          while (!ctx.signal.aborted) {
            await new Promise<void>((r) => (wake = r));
            while (changes.length) yield { status: changes.shift() ? Status.SERVING : Status.NOT_SERVING };
          }
        } finally {
          stop();
        }
      },
      list() {
        return { statuses: Object.fromEntries(HEALTH_SERVICES.map((s) => [s, { status: status() }])) };
      },
    });
}
