import type { Logger } from "pino";
import type { Store } from "./store.js";
import { newEventId } from "./ids.js";
import type { AuditEvent } from "./types.js";

export type NewAuditEvent = Omit<AuditEvent, "id" | "time" | "count" | "instanceId"> & {
  time?: number;
  count?: number;
  instanceId?: string | null;
};

export interface AuditLogOptions {
  /** How often buffered single events are written. */
  flushIntervalMs: number;
  /** Length of an aggregation interval for floods (anonymous failures, rate-limit refusals). */
  aggregateIntervalMs: number;
  /**
   * Length of an aggregation interval for known-key failures (at most 1 s, SPEC §7): each is
   * written, with its count, at the end of the interval it began in, so it is readable within it.
   */
  failureIntervalMs: number;
  /** Distinct aggregates kept per interval (each kind) before they fold into one overflow row. */
  maxAggregates: number;
}

/** Events counted in memory for one interval, one per aggregation key, written with a `count`. */
class Aggregates {
  private map = new Map<string, AuditEvent>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  /** Counts `e` under `key`; past `max` distinct keys, folds it into one overflow row per (action, reason). */
  add(key: string, e: NewAuditEvent, build: (e: NewAuditEvent) => AuditEvent): void {
    if (!this.map.has(key) && this.map.size >= this.max) {
      key = `overflow|${e.action}|${e.reason}`;
      e = { ...e, customerId: null, instanceId: null, ip: null, userAgent: null, requestId: null, target: null, actor: { type: "anonymous" } };
    }
    const existing = this.map.get(key);
    if (existing) existing.count += 1;
    else this.map.set(key, build(e));
  }

  take(): AuditEvent[] {
    const batch = [...this.map.values()];
    this.map = new Map();
    return batch;
  }
}

/**
 * The audit trail's writer (SPEC §7). Events that matter one by one (issue, update, revoke) are
 * written by the store together with their change. Failures are aggregated into one event per
 * (customer, action, reason, key, source ip) per interval with a `count` (the first occurrence's
 * time, request id and user agent): a known key's failures per `failureIntervalMs` (<= 1 s, so a
 * revoked key's flood adds at most one row per interval and is readable within it), floods of
 * unknown or malformed keys and rate-limit refusals per `aggregateIntervalMs`. The number of
 * distinct aggregates is capped, so a flood can grow neither storage nor memory without bound.
 */
export class AuditLog {
  private pending: AuditEvent[] = [];
  private readonly floods: Aggregates;
  private readonly failures: Aggregates;
  private timers: NodeJS.Timeout[] = [];
  private readonly maxPending = 10_000;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly opts: AuditLogOptions,
    private readonly log: Logger,
  ) {
    this.floods = new Aggregates(opts.maxAggregates);
    this.failures = new Aggregates(opts.maxAggregates);
  }

  /** Events and aggregates waiting in memory for the next write. */
  get depth(): number {
    return this.pending.length + this.floods.size + this.failures.size;
  }

  start(): void {
    this.timers.push(setInterval(() => void this.flushPending(), this.opts.flushIntervalMs).unref());
    this.timers.push(setInterval(() => void this.flushAggregates(this.floods), this.opts.aggregateIntervalMs).unref());
    this.timers.push(setInterval(() => void this.flushAggregates(this.failures), this.opts.failureIntervalMs).unref());
  }

  /** A complete event with id and time, for a store write that carries it with its change. */
  build = (e: NewAuditEvent): AuditEvent => {
    const time = e.time ?? this.now();
    return { ...e, id: newEventId(time), time, count: e.count ?? 1, instanceId: e.instanceId ?? null };
  };

  /** Buffers one event; written within `flushIntervalMs`. */
  record(e: NewAuditEvent): void {
    if (this.pending.length >= this.maxPending) {
      this.aggregate(e); // under a burst, fold instead of growing
      return;
    }
    this.pending.push(this.build(e));
  }

  /** Counts one occurrence of a flood-prone event; written once per `aggregateIntervalMs` with its count. */
  aggregate(e: NewAuditEvent): void {
    this.floods.add(aggregationKey(e), e, this.build);
  }

  /** Counts one failure of a known key; written once per `failureIntervalMs` (<= 1 s) with its count. */
  failure(e: NewAuditEvent): void {
    this.failures.add(aggregationKey(e), e, this.build);
  }

  async flush(): Promise<void> {
    await this.flushAggregates(this.floods);
    await this.flushAggregates(this.failures);
    await this.flushPending();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    await this.write(batch);
  }

  private async flushAggregates(which: Aggregates): Promise<void> {
    if (which.size === 0) return;
    await this.write(which.take());
  }

  private async write(batch: AuditEvent[]): Promise<void> {
    try {
      await this.store.appendAuditEvents(batch);
    } catch (err) {
      // Keep them for the next flush (bounded), so a short storage outage loses nothing.
      this.log.warn({ err, events: batch.length }, "audit write failed; will retry");
      this.pending = [...batch, ...this.pending].slice(0, this.maxPending);
    }
  }
}

/** What aggregated events are counted by: customer, action, reason, key and source. */
const aggregationKey = (e: NewAuditEvent) => [e.customerId, e.action, e.reason, e.actor.keyId, e.target?.keyId, e.ip].join("|");
