import type { Logger } from "pino";
import type { Store, UsageDelta } from "./store.js";
import type { KeyRecord } from "./types.js";

/**
 * Write-behind for `last_used_at` / `total_requests` (SPEC §2): successful authentications are
 * counted in memory and written as one batch per interval and on shutdown, never one write per
 * request. A crash loses at most one interval of counts. Reads through this process see the
 * pending counts too (`overlay`).
 */
export class UsageRecorder {
  private pending = new Map<string, UsageDelta>();
  private timer: NodeJS.Timeout | null = null;
  /** The flush under way: flushes never overlap (a store may not merge concurrent increments). */
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs).unref();
  }

  record(keyId: string, at: number): void {
    const d = this.pending.get(keyId);
    if (d) {
      d.count += 1;
      if (at > d.lastUsedAt) d.lastUsedAt = at;
    } else {
      this.pending.set(keyId, { keyId, lastUsedAt: at, count: 1 });
    }
  }

  /** The key as it will be once pending usage is written. */
  overlay(key: KeyRecord): KeyRecord {
    const d = this.pending.get(key.id);
    if (!d) return key;
    return {
      ...key,
      totalRequests: key.totalRequests + d.count,
      lastUsedAt: Math.max(key.lastUsedAt ?? 0, d.lastUsedAt),
    };
  }

  get depth(): number {
    return this.pending.size;
  }

  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    this.inFlight = this.write().finally(() => (this.inFlight = null));
    await this.inFlight;
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    try {
      await this.store.recordUsage(batch);
    } catch (err) {
      this.log.warn({ err, keys: batch.length }, "usage write failed; will retry");
      for (const d of batch) {
        const cur = this.pending.get(d.keyId);
        if (cur) {
          cur.count += d.count;
          cur.lastUsedAt = Math.max(cur.lastUsedAt, d.lastUsedAt);
        } else this.pending.set(d.keyId, d);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
