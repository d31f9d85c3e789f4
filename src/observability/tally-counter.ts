import { Counter, type CounterConfiguration } from "prom-client";

/**
 * A prom-client Counter for counts taken on every call. `inc` adds to a plain number per label
 * combination; the sums are handed to the counter when it is collected (a scrape, or the cluster
 * primary asking a worker), so the exported values are the same. prom-client's own `inc` hashes
 * and validates the labels each time (~1 µs, and a hot call counts three things).
 */
export class TallyCounter<L extends string> {
  readonly counter: Counter<L>;
  private readonly tallies = new Map<string, { labels: Record<L, string>; n: number }>();

  constructor(config: Omit<CounterConfiguration<L>, "collect">) {
    const tallies = this.tallies;
    this.counter = new Counter<L>({
      ...config,
      collect() {
        for (const t of tallies.values()) {
          if (t.n > 0) this.inc(t.labels, t.n);
          t.n = 0;
        }
      },
    });
  }

  /** `key` names the label combination (e.g. the values joined); `labels` is read only when it is new. */
  inc(key: string, labels: () => Record<L, string>): void {
    const t = this.tallies.get(key);
    if (t) t.n++;
    else this.tallies.set(key, { labels: labels(), n: 1 });
  }
}
