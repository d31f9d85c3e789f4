import cluster from "node:cluster";
import { runPrimary, workerCount } from "./cluster.js";
import { ConfigError, loadConfig } from "./config/config.js";
import { createLogger } from "./observability/logger.js";
import { AggregatorRegistry } from "prom-client";
import { createApp } from "./app.js";
import { startMetricsServer } from "./observability/metrics-server.js";
import { tuneGc } from "./observability/gc-tuning.js";

/**
 * `npm start`: validate configuration, serve (in this process, or in `WORKERS` cluster workers),
 * and on SIGTERM/SIGINT drain in-flight requests and flush buffered writes before exiting.
 */
async function main(): Promise<void> {
  tuneGc();
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`zpk: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL);
  const workers = workerCount(config.WORKERS);
  if (workers > 1 && cluster.isPrimary) {
    const metrics = await startMetricsServer(config.HOST, config.METRICS_PORT, "cluster");
    return runPrimary(workers, log, { metricsPort: metrics.port });
  }
  const app = await createApp(config, log);
  const ports = await app.start();
  if (cluster.isWorker) {
    new AggregatorRegistry(); // installs the worker's answer to the primary's metrics requests
    AggregatorRegistry.setRegistries([app.metrics.registry]);
    process.send?.({ type: "ready", ...ports });
  } else {
    const metrics = await startMetricsServer(config.HOST, config.METRICS_PORT, app.metrics.registry);
    log.info({ ...ports, metricsPort: metrics.port }, "ready");
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: draining requests");
    await app.stop();
    log.info("stopped");
    log.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`zpk: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
