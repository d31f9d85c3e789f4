import type { Logger } from "pino";
import type { Store } from "../store.js";
import type { RateLimitPolicy } from "../types.js";
import type { Reserves } from "./reserves.js";
import { type ChargeOutcome, type ExchangeOp, exchange, fullBucket, isOverCapacity } from "./token-bucket.js";

/** What the last decision of a step said was left (a new reserve follows an allowed last decision and counts in it). */
function lastRemaining(outcomes: ChargeOutcome[]): number {
  for (let i = outcomes.length - 1; i >= 0; i--) {
    const o = outcomes[i]!;
    if (!isOverCapacity(o)) return o.remaining;
  }
  return 0;
}

/** A charge waiting for its customer's next store step. */
interface Waiting {
  cost: number;
  settle: (outcome: ChargeOutcome | Error) => void;
}

/**
 * The store steps of customers' shared buckets (SPEC §6), as this process makes them. This is the
 * one per-customer queue: a customer's steps run one after another in this process (so a reserve
 * is never taken twice by concurrent requests, and conflicts in the store's compare-and-set only
 * come from other processes), and the charges that arrive while a step is under way wait and go
 * to the store together in the next one, each decided in arrival order as if charged alone. A
 * burst therefore costs a few store round trips rather than one per request, which keeps small
 * buckets (no reserves: every charge a store step) fast on MongoDB when many replicas charge one
 * customer at once.
 *
 * A charge is served from this process's reserve (reserves.ts) when it holds enough, without a
 * step; a step puts the old reserve's unused tokens back and may take a new one.
 */
export class BucketSteps {
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Per customer, the charges that will go to the store together in its next step. */
  private readonly waiting = new Map<string, Waiting[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly defaults: RateLimitPolicy,
    private readonly reserves: Reserves,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * Takes `cost` tokens from the customer's bucket: from the reserve at once (topping it up in
   * the background once it is half spent), or in the next store step.
   */
  charge(customerId: string, cost: number): ChargeOutcome | Promise<ChargeOutcome> {
    const spent = this.reserves.spend(customerId, cost, this.now());
    if (spent === null) return this.queue(customerId, cost);
    if (this.reserves.lowAfterSpend(customerId)) this.topUp(customerId);
    return spent;
  }

  /** Gives the customer's unused reserved tokens back to its bucket (its policy changed). */
  giveBack(customerId: string): Promise<void> {
    return this.serialized(customerId, () => this.returnReserve(customerId));
  }

  /** Gives reserves back once they are due, every `holdMs`. */
  start(): void {
    const { holdMs } = this.reserves;
    if (holdMs > 0) this.timer = setInterval(() => void this.returnDue(false), holdMs).unref();
  }

  /** Gives every reserve back (shutdown). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.returnDue(true);
  }

  private queue(customerId: string, cost: number): Promise<ChargeOutcome> {
    return new Promise((resolve, reject) => {
      const waiting: Waiting = { cost, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) };
      const open = this.waiting.get(customerId);
      if (open) return void open.push(waiting);
      const batch = [waiting];
      this.waiting.set(customerId, batch);
      void this.serialized(customerId, () => {
        // From here on, new charges wait for the next step.
        this.waiting.delete(customerId);
        return this.chargeBatch(customerId, batch);
      });
    });
  }

  private async chargeBatch(customerId: string, batch: Waiting[]): Promise<void> {
    // The step before may have left a reserve that serves some of them.
    const rest = batch.filter((w) => {
      const fromReserve = this.reserves.spend(customerId, w.cost, this.now());
      if (fromReserve) w.settle(fromReserve);
      return !fromReserve;
    });
    if (rest.length === 0) return;
    try {
      const outcomes = await this.chargeInStore(customerId, rest.map((w) => w.cost));
      rest.forEach((w, i) => w.settle(outcomes[i]!));
    } catch (err) {
      for (const w of rest) w.settle(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** One store step for queued costs: puts the old reserve back, charges them, takes a new reserve. */
  private async chargeInStore(customerId: string, costs: number[]): Promise<ChargeOutcome[]> {
    // Dropped before the step: the tokens it puts back must not also be spent while it runs.
    const returned = this.reserves.drop(customerId);
    const { outcomes, reserved, policy } = await this.step(customerId, (p) => ({ returned, costs, reserve: this.reserves.sizeFor(p) }));
    this.reserves.replace(customerId, reserved, policy, lastRemaining(outcomes), this.now());
    return outcomes;
  }

  /** A store step that adds a reserve's worth to the customer's reserve while charges still spend the rest of it. */
  private topUp(customerId: string): void {
    void this.serialized(customerId, async () => {
      const { reserved, policy, left } = await this.step(customerId, (p) => ({ returned: 0, costs: [], reserve: this.reserves.topUpSize(customerId, p) }));
      this.reserves.topUp(customerId, reserved, policy, left, this.now());
    }).catch((err: unknown) =>
      // The reserve goes on serving what it holds; once spent, charges go to the store (and fail there).
      this.log.warn({ err: String(err) }, "could not top up a rate-limit reserve"),
    );
  }

  private async returnReserve(customerId: string): Promise<void> {
    const tokens = this.reserves.drop(customerId);
    if (tokens < 1) return;
    await this.step(customerId, () => ({ returned: tokens, costs: [], reserve: 0 }));
  }

  private async returnDue(all: boolean): Promise<void> {
    const due = this.reserves.due(this.now(), all);
    await Promise.all(
      due.map((c) =>
        this.serialized(c, () => this.returnReserve(c)).catch((err: unknown) =>
          // The store is down: the reserve is lost, which only ever refuses early, never admits more.
          this.log.warn({ err: String(err) }, "could not give unused rate-limit tokens back"),
        ),
      ),
    );
  }

  /** One atomic `exchange` on the customer's shared bucket: its outcomes and reserve, under which policy. */
  private step(customerId: string, op: (policy: RateLimitPolicy) => ExchangeOp) {
    return this.store.updateBucket(customerId, this.defaults, (state, policy) => {
      const now = this.now();
      const r = exchange(state ?? fullBucket(policy, now), policy, now, op(policy));
      return { next: r.next, decision: { outcomes: r.outcomes, reserved: r.reserved, policy, left: Math.floor(r.next.tokens) } };
    });
  }

  /** Runs store steps of one customer one after another in this process. */
  private serialized<T>(customerId: string, step: () => T | Promise<T>): Promise<T> {
    const before = this.queues.get(customerId) ?? Promise.resolve();
    const run = before.then(step, step);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(customerId, tail);
    void tail.then(() => {
      if (this.queues.get(customerId) === tail) this.queues.delete(customerId);
    });
    return run;
  }
}
