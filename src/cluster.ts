import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import type { Logger } from "pino";

/** `WORKERS`: a number, or `auto` for one process per core. */
export const workerCount = (setting: number | "auto") => (setting === "auto" ? availableParallelism() : setting);

export interface ReadyMessage {
  type: "ready";
  port: number;
  grpcPort: number;
  authzPort?: number;
}

/**
 * The primary of `WORKERS` > 1 (node:cluster): forks the workers, which all listen on the same
 * PORT and GRPC_PORT (the primary holds the sockets and hands connections out), replaces a worker
 * that dies, and on SIGTERM/SIGINT passes the signal on and waits for every worker to drain and
 * flush. Workers share nothing in memory: the store holds the rate-limit buckets, and key caches
 * are kept coherent by polling (see key-cache.ts), so limits and revocation hold across them.
 */
export function runPrimary(count: number, log: Logger, extra: Record<string, number> = {}): void {
  let stopping = false;
  let ready = 0;
  const readyWorkers = new WeakSet<Worker>();
  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on("message", (msg: ReadyMessage) => {
      if (msg?.type !== "ready") return;
      readyWorkers.add(worker);
      ready++;
      if (ready === count) log.info({ workers: count, port: msg.port, grpcPort: msg.grpcPort, authzPort: msg.authzPort, ...extra }, "ready");
    });
    return worker;
  };
  for (let i = 0; i < count; i++) fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info("all workers stopped");
        log.flush();
        process.exit(0);
      }
      return;
    }
    if (!readyWorkers.has(worker)) {
      // It failed before serving (e.g. storage unreachable): restarting would only loop.
      log.fatal({ pid: worker.process.pid, code }, "worker failed to start; stopping");
      stop("SIGTERM");
      setTimeout(() => process.exit(1), 5_000).unref();
      cluster.once("exit", () => Object.keys(cluster.workers ?? {}).length === 0 && process.exit(1));
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, "worker died; starting a new one");
    ready--;
    fork();
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down workers");
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
