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
  /** How often buffered single events are written (known-key failures must be readable in 1 s). */
  flushIntervalMs: number;
  /** Length of an aggregation interval for floods (anonymous failures, rate-limit refusals). */
  aggregateIntervalMs: number;
  /** Distinct (reason, source) pairs kept per interval before they fold into one overflow row. */
  maxAggregates: number;
}

/**
 * The audit trail's writer (SPEC §7). Events that matter one by one (issue, update, revoke) are
 * written by the store together with their change. Failure events are buffered and written in
 * batches within `flushIntervalMs`; floods (unknown/malformed keys, rate-limit refusals) are
 * aggregated into one event per (customer, action, reason, key, ip) per interval with a `count`,
 * and the number of distinct aggregates is capped, so garbage can grow neither storage nor memory
 * without bound.
 */
export class AuditLog {
  private pending: AuditEvent[] = [];
  private aggregates = new Map<string, AuditEvent>();
  private timers: NodeJS.Timeout[] = [];
  private readonly maxPending = 10_000;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly opts: AuditLogOptions,
    private readonly log: Logger,
  ) {}

  /** Events and aggregates waiting in memory for the next write. */
  get depth(): number {
    return this.pending.length + this.aggregates.size;
  }

  start(): void {
    this.timers.push(setInterval(() => void this.flushPending(), this.opts.flushIntervalMs).unref());
    this.timers.push(setInterval(() => void this.flushAggregates(), this.opts.aggregateIntervalMs).unref());
  }

  /** A complete event with id and time, for a store write that carries it with its change. */
  build(e: NewAuditEvent): AuditEvent {
    const time = e.time ?? this.now();
    return { ...e, id: newEventId(time), time, count: e.count ?? 1, instanceId: e.instanceId ?? null };
  }

  /** Buffers one event; written within `flushIntervalMs`. */
  record(e: NewAuditEvent): void {
    if (this.pending.length >= this.maxPending) {
      this.aggregate({ ...e, reason: e.reason }); // under a burst, fold instead of growing
      return;
    }
    this.pending.push(this.build(e));
  }

  /** Counts one occurrence of a flood-prone event; written once per interval with its count. */
  aggregate(e: NewAuditEvent): void {
    let k = [e.customerId, e.action, e.reason, e.actor.keyId, e.target?.keyId, e.ip].join("|");
    if (!this.aggregates.has(k) && this.aggregates.size >= this.opts.maxAggregates) {
      k = `overflow|${e.action}|${e.reason}`;
      e = { ...e, customerId: null, instanceId: null, ip: null, userAgent: null, requestId: null, target: null, actor: { type: "anonymous" } };
    }
    const existing = this.aggregates.get(k);
    if (existing) existing.count += 1;
    else this.aggregates.set(k, this.build(e));
  }

  async flush(): Promise<void> {
    await this.flushAggregates();
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

  private async flushAggregates(): Promise<void> {
    if (this.aggregates.size === 0) return;
    const batch = [...this.aggregates.values()];
    this.aggregates = new Map();
    await this.write(batch);
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
