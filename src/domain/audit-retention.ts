import type { Logger } from "pino";
import type { Store } from "./store.js";

export interface AuditRetentionOptions {
  /** Failure events older than this are deleted; 0 keeps them forever. */
  retentionMs: number;
  /** How often a purge runs. */
  intervalMs: number;
  /** Most events one run deletes, so a purge never holds the store for long. */
  batch: number;
}

/**
 * Retention of failure events (`auth.failed`, `rate_limit.exceeded`): the part of the audit trail
 * a client can grow without managing keys, so it is bounded in time as well as in rate
 * (audit-log.ts aggregates it). Each run deletes at most `batch` events older than the retention;
 * a backlog is worked off over several runs. Successful changes (issue, update, revoke) are kept.
 * Every replica runs it; deletes are idempotent.
 */
export class AuditRetention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly opts: AuditRetentionOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.opts.retentionMs <= 0) return;
    this.timer = setInterval(() => void this.runOnce(), this.opts.intervalMs).unref();
  }

  /** Stops the timer; resolves once a run under way has ended (before the store closes). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One bounded purge; resolves to the number of events deleted (0 on a storage failure). */
  runOnce(): Promise<number> {
    this.running ??= this.purge().finally(() => (this.running = null));
    return this.running;
  }

  private async purge(): Promise<number> {
    try {
      const deleted = await this.store.purgeFailureEvents(this.now() - this.opts.retentionMs, this.opts.batch);
      if (deleted > 0) this.log.info({ deleted, batch: this.opts.batch }, "purged failure audit events past retention");
      return deleted;
    } catch (err) {
      this.log.warn({ err }, "audit retention purge failed; will retry");
      return 0;
    }
  }
}
