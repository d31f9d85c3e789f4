import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { TallyCounter } from "./tally-counter.js";
import { TallyHistogram } from "./tally-histogram.js";

/**
 * Prometheus metrics (prom-client), one registry per process; with WORKERS > 1 the primary
 * serves the sum over workers (metrics-server.ts). Names and meanings are listed in the README's
 * operations section.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "zpk_" });
  const m = {
    registry,
    requests: new TallyCounter({
      name: "zpk_requests_total",
      help: "RPCs and REST calls by method, transport (rest, connect, grpc, grpc-web) and gRPC status code name",
      labelNames: ["method", "transport", "code"] as const,
      registers: [registry],
    }),
    duration: new TallyHistogram({
      name: "zpk_request_duration_seconds",
      help: "Time spent in the service per call, by method and transport",
      labelNames: ["method", "transport"] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    authOutcomes: new TallyCounter({
      name: "zpk_auth_outcomes_total",
      help: "Key authentications by outcome: valid, or the denial reason",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    rateLimitDecisions: new TallyCounter({
      name: "zpk_rate_limit_decisions_total",
      help: "Token-bucket decisions by result (allowed, refused)",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    storeDuration: new TallyHistogram({
      name: "zpk_store_operation_duration_seconds",
      help: "Store operation latency by operation",
      labelNames: ["op"] as const,
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2],
      registers: [registry],
    }),
    storeErrors: new TallyCounter({
      name: "zpk_store_errors_total",
      help: "Store operations that failed, by operation",
      labelNames: ["op"] as const,
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Gauges read from live objects at scrape time (cache hits, write-behind queues). */
export function registerGauges(
  metrics: Metrics,
  sources: {
    cache: { hits: number; misses: number; size: { known: number; unknown: number; knownBytes: number } };
    usageDepth: () => number;
    auditPending: () => number;
  },
): void {
  const { registry } = metrics;
  new Gauge({
    name: "zpk_key_cache_lookups",
    help: "Key cache lookups since start, by result (hit, miss); hit ratio = hit / (hit + miss)",
    labelNames: ["result"] as const,
    registers: [registry],
    collect() {
      this.set({ result: "hit" }, sources.cache.hits);
      this.set({ result: "miss" }, sources.cache.misses);
    },
  });
  new Gauge({
    name: "zpk_key_cache_entries",
    help: "Entries in the key cache, by kind (known keys, unknown digests)",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      this.set({ kind: "known" }, sources.cache.size.known);
      this.set({ kind: "unknown" }, sources.cache.size.unknown);
    },
  });
  new Gauge({
    name: "zpk_key_cache_bytes",
    help: "Estimated heap bytes of the known keys in the key cache (bounded by KEY_CACHE_MAX_BYTES)",
    registers: [registry],
    collect() {
      this.set(sources.cache.size.knownBytes);
    },
  });
  new Gauge({
    name: "zpk_usage_write_behind_depth",
    help: "Keys with usage counted in memory, not yet written to the store",
    registers: [registry],
    collect() {
      this.set(sources.usageDepth());
    },
  });
  new Gauge({
    name: "zpk_audit_write_behind_depth",
    help: "Audit events (and aggregates) buffered in memory, not yet written to the store",
    registers: [registry],
    collect() {
      this.set(sources.auditPending());
    },
  });
}
