/**
 * Reading the server's Prometheus `/metrics` (METRICS_PORT; with WORKERS > 1 the primary's sum
 * over the workers), for tests and the benchmark.
 */
export async function scrapeMetrics(metricsPort: number | null): Promise<string> {
  if (metricsPort === null) throw new Error("this server has no metrics port (METRICS_PORT)");
  return (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
}

/** The value of one series, named exactly as exported (`name{label="v",…}`), or undefined if absent. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
