import type { Logger } from "pino";
import type { Store } from "../storage/store.js";
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
 * serialized in this process, so a reserve is never taken twice by concurrent requests.
 */
export class RateLimitLeases {
  private readonly leases = new Map<string, Lease>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly defaults: RateLimitPolicy,
    private readonly now: () => number,
    private readonly opts: LeaseOptions,
    private readonly log: Logger,
  ) {}

  charge(customerId: string, cost: number, validate: (policy: RateLimitPolicy) => void): RateLimitDecision | Promise<RateLimitDecision> {
    return this.fromLease(customerId, cost) ?? this.serialized(customerId, () => this.fromLease(customerId, cost) ?? this.fromStore(customerId, cost, validate));
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

  private async fromStore(customerId: string, cost: number, validate: (policy: RateLimitPolicy) => void): Promise<RateLimitDecision> {
    const returned = this.leases.get(customerId)?.tokens ?? 0;
    const { decision, reserved, policy } = await this.storeStep(customerId, (p) => {
      validate(p);
      return { returned, cost, reserve: this.opts.leaseMs > 0 ? reserveFor(p) : 0 };
    });
    // The old reserve's tokens went back to the bucket in that step; a new one replaces it.
    if (reserved > 0) {
      this.leases.set(customerId, {
        tokens: reserved,
        limit: policy.capacity,
        refillPerSecond: policy.refillPerSecond,
        storeRemaining: decision.remaining - reserved,
        expiresAt: this.now() + this.opts.leaseMs,
      });
    } else this.leases.delete(customerId);
    return decision;
  }

  private async giveBack(customerId: string): Promise<void> {
    const lease = this.leases.get(customerId);
    this.leases.delete(customerId);
    if (!lease || lease.tokens < 1) return;
    await this.storeStep(customerId, () => ({ returned: lease.tokens, cost: 0, reserve: 0 }));
  }

  /** One atomic `exchange` on the customer's shared bucket; says what it reserved, under which policy. */
  private async storeStep(customerId: string, op: (policy: RateLimitPolicy) => ExchangeOp) {
    let reserved = 0;
    let policyUsed = this.defaults;
    const decision = await this.store.updateBucket(customerId, this.defaults, (state, policy) => {
      const now = this.now();
      const r = exchange(state ?? fullBucket(policy, now), policy, now, op(policy));
      policyUsed = policy;
      reserved = r.reserved;
      return r;
    });
    return { decision, reserved, policy: policyUsed };
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
