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

/**
 * Rate-limit bucket store steps (`updateBucket` calls) so far, summed over the servers whose
 * metrics ports are given: how often charging went to the store rather than a reserve.
 */
export async function bucketStoreSteps(metricsPorts: (number | null)[]): Promise<number> {
  const counts = await Promise.all(
    metricsPorts.map(async (p) => metricValue(await scrapeMetrics(p), 'zpk_store_operation_duration_seconds_count{op="updateBucket"}') ?? 0),
  );
  return counts.reduce((a, b) => a + b, 0);
}
