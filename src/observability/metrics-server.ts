import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AggregatorRegistry, type Registry } from "prom-client";

/**
 * `/metrics` on its own port (`METRICS_PORT`), so it can stay private like `GRPC_PORT`. In a
 * single process it serves that process's registry; as the cluster primary it serves the sum
 * over all workers (prom-client's AggregatorRegistry asks each worker over IPC).
 */
export async function startMetricsServer(host: string, port: number, registry: Registry | "cluster"): Promise<{ server: Server; port: number }> {
  const aggregator = registry === "cluster" ? new AggregatorRegistry() : null;
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":{"code":"not_found","message":"try /metrics"}}');
      return;
    }
    const body = aggregator ? aggregator.clusterMetrics() : (registry as Registry).metrics();
    body.then(
      (text) => res.writeHead(200, { "content-type": aggregator?.contentType ?? (registry as Registry).contentType }).end(text),
      () => res.writeHead(503, { "content-type": "application/json" }).end('{"error":{"code":"unavailable","message":"metrics unavailable"}}'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
