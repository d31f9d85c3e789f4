import type { Logger } from "pino";
import type { Store, UsageDelta } from "./store.js";
import type { HourlyUsageDelta } from "./session-store.js";
import type { KeyRecord } from "./types.js";

const HOUR_MS = 3_600_000;
/** Hourly counts are kept this long (GetUsage's window), then deleted. */
export const USAGE_RETENTION_MS = 7 * 24 * HOUR_MS;
/** Distinct (key, hour, outcome) counters held between flushes; beyond it new ones are dropped. */
const MAX_HOURLY_PENDING = 100_000;

/**
 * `{ ...key, totalRequests, lastUsedAt }`, field by field: a spread of a frozen record (what the
 * SQLite list cache hands out) takes V8's slow path, 220 ns against 30 ns a copy on these machines,
 * once per listed key with pending usage. The type names every field, so a new one is a compile
 * error here until it is copied.
 */
function withUsage(key: Readonly<KeyRecord>, totalRequests: number, lastUsedAt: number): Required<KeyRecord> {
  return {
    id: key.id,
    customerId: key.customerId,
    instanceId: key.instanceId,
    name: key.name,
    prefix: key.prefix,
    environment: key.environment,
    scopes: key.scopes,
    metadata: key.metadata,
    digest: key.digest,
    lastUsedAt,
    totalRequests,
    expiresAt: key.expiresAt,
    createdAt: key.createdAt,
    updatedAt: key.updatedAt,
    revokedAt: key.revokedAt,
    enabled: key.enabled,
    rolledFrom: key.rolledFrom,
    rolledTo: key.rolledTo,
    predecessorGraceMs: key.predecessorGraceMs,
    lastFour: key.lastFour,
  };
}

/**
 * Write-behind for `last_used_at` / `total_requests` (SPEC §2): successful authentications are
 * counted in memory and written as one batch per interval and on shutdown, never one write per
 * request. A crash loses at most one interval of counts. Reads through this process see the
 * pending counts too (`overlay`).
 *
 * The same batches carry the hourly counts per key and outcome (valid or denial reason) behind
 * the dashboard's usage chart and GetUsage; counts older than USAGE_RETENTION_MS are deleted
 * (checked once an hour), so their storage is bounded by keys x 168 hours x outcomes.
 */
export class UsageRecorder {
  private pending = new Map<string, UsageDelta>();
  private hourly = new Map<string, HourlyUsageDelta>();
  /**
   * The counter each key record last counted into, with the map it is in: recordOutcome's fast
   * path while that map is still `hourly` (a flush starts a new one). The key cache hands out one
   * record per key version, so a key's calls of one hour and outcome find their counter without
   * building and hashing its `key|hour|outcome` name (~0.15 µs a call).
   */
  private lastCounter = new WeakMap<KeyRecord, { delta: HourlyUsageDelta; in: Map<string, HourlyUsageDelta> }>();
  private lastPurge = 0;
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

  /** Counts one authentication of `key` in its hour, by outcome (`valid` or the denial reason). */
  recordOutcome(key: KeyRecord, outcome: string, at: number): void {
    const hour = at - (at % HOUR_MS);
    const last = this.lastCounter.get(key);
    if (last !== undefined && last.in === this.hourly && last.delta.hour === hour && last.delta.outcome === outcome) {
      last.delta.count += 1;
      return;
    }
    const id = `${key.id}|${hour}|${outcome}`;
    let d = this.hourly.get(id);
    if (d) d.count += 1;
    else if (this.hourly.size < MAX_HOURLY_PENDING) {
      d = { customerId: key.customerId, keyId: key.id, instanceId: key.instanceId, hour, outcome, count: 1 };
      this.hourly.set(id, d);
    }
    if (d) this.lastCounter.set(key, { delta: d, in: this.hourly });
  }

  /**
   * The key as it will be once pending usage is written: the key itself if none is pending, else a
   * copy that differs from it only in `totalRequests` and `lastUsedAt`.
   */
  overlay(key: KeyRecord): KeyRecord {
    const d = this.pending.get(key.id);
    return d ? withUsage(key, key.totalRequests + d.count, Math.max(key.lastUsedAt ?? 0, d.lastUsedAt)) : key;
  }

  get depth(): number {
    return this.pending.size + this.hourly.size;
  }

  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    this.inFlight = this.write().finally(() => (this.inFlight = null));
    await this.inFlight;
  }

  private async write(): Promise<void> {
    await this.writeHourly();
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

  private async writeHourly(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPurge > HOUR_MS) {
      this.lastPurge = now;
      const cutoff = now - (now % HOUR_MS) - USAGE_RETENTION_MS;
      await this.store.deleteHourlyUsageBefore(cutoff).catch((err: unknown) => this.log.warn({ err }, "hourly usage purge failed"));
    }
    if (this.hourly.size === 0) return;
    const batch = [...this.hourly.values()];
    this.hourly = new Map();
    try {
      await this.store.recordHourlyUsage(batch);
    } catch (err) {
      this.log.warn({ err, counters: batch.length }, "hourly usage write failed; will retry");
      for (const d of batch) {
        const id = `${d.keyId}|${d.hour}|${d.outcome}`;
        const cur = this.hourly.get(id);
        if (cur) cur.count += d.count;
        else this.hourly.set(id, d);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
