import type { Logger } from "pino";
import type { Store } from "./store.js";
import { type ExchangeOp, exchange, fullBucket } from "./token-bucket.js";
import type { RateLimitDecision, RateLimitPolicy } from "./types.js";

export interface LeaseOptions {
  /** How long a process may keep unused reserved tokens before giving them back; 0 = never reserve. */
  leaseMs: number;
}

/** A process reserves 1 % of a customer's capacity at a time, at most this many tokens... */
export const MAX_RESERVE = 1_000;
/** ...and only when that is at least this many: smaller buckets are charged one store step each. */
export const MIN_RESERVE = 10;

/** Tokens this process may spend for a customer without asking the store. */
export const reserveFor = (policy: RateLimitPolicy) => {
  const r = Math.min(MAX_RESERVE, Math.floor(policy.capacity / 100));
  return r >= MIN_RESERVE ? r : 0;
};

/** A charge waiting for the customer's next store step. */
interface Waiting {
  cost: number;
  validate: (policy: RateLimitPolicy) => void;
  settle: (outcome: RateLimitDecision | Error) => void;
}

/** Every charge of a batch failed validation: the step is abandoned without a write. */
class AllInvalid extends Error {}

interface Lease {
  tokens: number;
  limit: number;
  refillPerSecond: number;
  /** The store's count after the reservation was taken, for the remaining header. */
  storeRemaining: number;
  expiresAt: number;
}

/**
 * Charges a customer's shared bucket (SPEC §6) cheaply: each store step takes the cost plus a
 * small reserve (1 % of capacity, at most 1 000 tokens) that later charges in this process spend
 * from memory, so a busy customer costs one store step per reserve rather than per request.
 *
 * Why the SPEC bound stays exact: every admitted request spends a token that was taken from the
 * shared bucket in an atomic store step, so admissions never exceed capacity + elapsed × rate.
 * The error is one-sided: while P processes hold reserves, a customer can be refused up to
 * P × reserve tokens early. Reserves are given back to the bucket when they have been unused for
 * `leaseMs` (and at shutdown), so the tokens are not lost. Store steps of one customer are
 * serialized in this process, so a reserve is never taken twice by concurrent requests, and the
 * charges that queue up behind a step go to the store together in the next one (each decided as
 * if charged alone, in arrival order), so a burst on a small bucket, where there are no reserves,
 * costs a few store steps rather than one per request.
 */
export class RateLimitLeases {
  private readonly leases = new Map<string, Lease>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Per customer, the charges that will go to the store together in its next step. */
  private readonly waiting = new Map<string, Waiting[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly defaults: RateLimitPolicy,
    private readonly now: () => number,
    private readonly opts: LeaseOptions,
    private readonly log: Logger,
  ) {}

  charge(customerId: string, cost: number, validate: (policy: RateLimitPolicy) => void): RateLimitDecision | Promise<RateLimitDecision> {
    return this.fromLease(customerId, cost) ?? this.queue(customerId, { cost, validate });
  }

  /** Drops this process's reserve for a customer (its policy changed), giving the tokens back. */
  release(customerId: string): Promise<void> {
    return this.serialized(customerId, () => this.giveBack(customerId));
  }

  start(): void {
    if (this.opts.leaseMs > 0) this.timer = setInterval(() => void this.expire(false), this.opts.leaseMs).unref();
  }

  /** Gives every reserve back (shutdown). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.expire(true);
  }

  private fromLease(customerId: string, cost: number): RateLimitDecision | null {
    const lease = this.leases.get(customerId);
    if (!lease || lease.tokens < cost) return null;
    const now = this.now();
    if (lease.expiresAt <= now) return null;
    lease.tokens -= cost;
    const remaining = Math.min(lease.limit, Math.floor(lease.storeRemaining + lease.tokens));
    return {
      allowed: true,
      limit: lease.limit,
      remaining,
      retryAfterSeconds: 0,
      resetAt: now + Math.ceil(((lease.limit - remaining) / lease.refillPerSecond) * 1000),
    };
  }

  /**
   * Queues a charge for the customer's next store step. Charges that arrive while a step is under
   * way wait and then go to the store together, in one step: a burst costs a few store round
   * trips instead of one each, which is what keeps small buckets (every charge a store step) fast
   * on MongoDB when many replicas charge one customer at once.
   */
  private queue(customerId: string, charge: Omit<Waiting, "settle">): Promise<RateLimitDecision> {
    return new Promise((resolve, reject) => {
      const waiting: Waiting = { ...charge, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) };
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
      const fromLease = this.fromLease(customerId, w.cost);
      if (fromLease) w.settle(fromLease);
      return !fromLease;
    });
    if (rest.length === 0) return;
    try {
      const outcomes = await this.fromStore(customerId, rest);
      rest.forEach((w, i) => w.settle(outcomes[i]!));
    } catch (err) {
      for (const w of rest) w.settle(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** One store step for the queued charges: each gets its decision, or its validation error. */
  private async fromStore(customerId: string, batch: Waiting[]): Promise<(RateLimitDecision | Error)[]> {
    const returned = this.leases.get(customerId)?.tokens ?? 0;
    let invalid: (Error | null)[] = [];
    const step = await this.storeStep(customerId, (p) => {
      invalid = batch.map(({ validate }) => {
        try {
          validate(p);
          return null;
        } catch (err) {
          return err instanceof Error ? err : new Error(String(err));
        }
      });
      // Nothing to charge: leave the bucket (and this process's reserve) as they are.
      if (invalid.every((e) => e !== null)) throw new AllInvalid();
      return { returned, costs: batch.filter((_, i) => !invalid[i]).map((w) => w.cost), reserve: this.opts.leaseMs > 0 ? reserveFor(p) : 0 };
    }).catch((err: unknown) => {
      if (err instanceof AllInvalid) return null;
      throw err;
    });
    if (!step) return invalid as Error[];
    const { decisions, reserved, policy } = step;
    // The old reserve's tokens went back to the bucket in that step; a new one replaces it.
    const last = decisions.at(-1)!;
    if (reserved > 0) {
      this.leases.set(customerId, {
        tokens: reserved,
        limit: policy.capacity,
        refillPerSecond: policy.refillPerSecond,
        storeRemaining: last.remaining - reserved,
        expiresAt: this.now() + this.opts.leaseMs,
      });
    } else this.leases.delete(customerId);
    let next = 0;
    return invalid.map((e) => e ?? decisions[next++]!);
  }

  private async giveBack(customerId: string): Promise<void> {
    const lease = this.leases.get(customerId);
    this.leases.delete(customerId);
    if (!lease || lease.tokens < 1) return;
    await this.storeStep(customerId, () => ({ returned: lease.tokens, costs: [], reserve: 0 }));
  }

  /** One atomic `exchange` on the customer's shared bucket; says what it decided and reserved, under which policy. */
  private storeStep(customerId: string, op: (policy: RateLimitPolicy) => ExchangeOp) {
    return this.store.updateBucket(customerId, this.defaults, (state, policy) => {
      const now = this.now();
      const r = exchange(state ?? fullBucket(policy, now), policy, now, op(policy));
      return { next: r.next, decision: { decisions: r.decisions, reserved: r.reserved, policy } };
    });
  }

  private async expire(all: boolean): Promise<void> {
    const now = this.now();
    const due = [...this.leases].filter(([, l]) => all || l.expiresAt <= now).map(([c]) => c);
    await Promise.all(
      due.map((c) =>
        this.serialized(c, () => this.giveBack(c)).catch((err: unknown) =>
          // The store is down: the reserve is lost, which only ever refuses early, never admits more.
          this.log.warn({ err: String(err) }, "could not give unused rate-limit tokens back"),
        ),
      ),
    );
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
