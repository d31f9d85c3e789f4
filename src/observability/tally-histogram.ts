import type { Registry } from "prom-client";

interface Series<L extends string> {
  labels: Record<L, string>;
  /** Observations per bucket (not cumulative); the last slot is above the largest bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  /** prom-client's bucket entries carry `exemplar: null` when exemplars are off. */
  exemplar?: null;
}

export interface TallyHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds, ascending (as prom-client's `buckets`). */
  buckets: readonly number[];
  registers: Registry[];
}

/**
 * A Prometheus histogram for values observed on every call, exported exactly as prom-client's
 * Histogram exports one (the same series, names and `aggregator: "sum"`, so a cluster primary
 * adds the workers' up). prom-client's `observe` validates and hashes the label object on each
 * call, a measurable part of a gateway's Authenticate; here a series is found by a key the caller
 * builds once (e.g. the label values joined) and its labels are read only when it is new.
 */
export class TallyHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly bounds: readonly number[];
  private readonly series = new Map<string, Series<L>>();

  constructor(config: TallyHistogramConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = config.buckets;
    for (const r of config.registers) r.registerMetric(this as never);
  }

  observe(key: string, labels: () => Record<L, string>, value: number): void {
    let s = this.series.get(key);
    if (!s) {
      s = { labels: labels(), counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  reset(): void {
    this.series.clear();
  }

  /** The registry's text exposition reads this (labels apart from `le`, as prom-client does). */
  getForPromString() {
    return this.snapshot(false);
  }

  /** JSON (and the cluster primary's aggregation) reads this. */
  get() {
    return this.snapshot(true);
  }

  private snapshot(splay: boolean) {
    const values: ValuePair[] = [];
    const pair = (own: Record<string, string | number>, labels: Record<string, string>, value: number, metricName: string, bucket = false): ValuePair => {
      const p: ValuePair = splay ? { labels: { ...own, ...labels }, value, metricName } : { labels: own, sharedLabels: labels, value, metricName };
      if (bucket) p.exemplar = null;
      return p;
    };
    for (const s of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push(pair({ le }, s.labels, acc, `${this.name}_bucket`, true));
      });
      values.push(pair({ le: "+Inf" }, s.labels, s.count, `${this.name}_bucket`, true));
      values.push(pair({}, s.labels, s.sum, `${this.name}_sum`));
      values.push(pair({}, s.labels, s.count, `${this.name}_count`));
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }
}
