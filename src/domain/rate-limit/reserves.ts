import type { RateLimitDecision, RateLimitPolicy } from "../types.js";

/** A process reserves 1 % of a customer's capacity at a time, at most this many tokens... */
export const MAX_RESERVE = 1_000;
/** ...and only when that is at least this many: smaller buckets are charged one store step each. */
export const MIN_RESERVE = 10;

/** Tokens this process may take for a customer in one store step beyond the charge itself. */
export const reserveFor = (policy: RateLimitPolicy) => {
  const r = Math.min(MAX_RESERVE, Math.floor(policy.capacity / 100));
  return r >= MIN_RESERVE ? r : 0;
};

/** Tokens taken from a customer's shared bucket that this process has not spent yet. */
interface Reserve {
  tokens: number;
  /** A full reserve under its policy (`sizeFor`): what a fill or a top-up takes. */
  size: number;
  /** A top-up was asked for since the reserve was last filled (one at a time). */
  topUpAsked: boolean;
  limit: number;
  refillPerSecond: number;
  /** The store's count after the reserve was taken, for the remaining header. */
  storeRemaining: number;
  /** When unused tokens go back to the bucket. */
  returnAt: number;
}

/**
 * This process's reserves of rate-limit tokens (SPEC §6 on the hot path): for a bucket of capacity
 * ≥ 1 000, a store step takes the charge plus a reserve of 1 % of the capacity (at most 1 000
 * tokens), which later charges in this process spend from memory, so a busy customer costs one
 * store step per reserve instead of one per request.
 *
 * Why the SPEC bound stays exact: every admitted request spends a token that was taken from the
 * shared bucket in an atomic store step, so admissions never exceed capacity + elapsed × rate.
 * The error is one-sided: while P processes hold reserves, a customer can be refused up to
 * P × 1.5 × reserve tokens early (a reserve holds at most half of one plus the one a top-up adds).
 * Unused tokens go back to the bucket `holdMs` after the reserve was last filled (and at
 * shutdown), so they are not lost.
 *
 * Once charges have spent half a reserve, it asks to be topped up (`lowAfterSpend`): a store step
 * adds one more reserve's worth while the other half is still spent from memory, so a busy
 * customer's charges do not wait for the store. On MongoDB a step takes milliseconds (10-25 ms on
 * FerretDB under the bench's load), in which every charge of the customer used to queue: 15-22 %
 * of the time at ~14 000 charges a second (docs/rate-limits.md has the A/B). Filling only back up
 * to one reserve would keep the bound above at P × reserve, but make twice the store steps, and
 * the database's CPU for them took back most of the gain. A top-up that finds the customer's
 * policy changed adds nothing and makes the reserve due, so it goes back in the next step, as a
 * reserve sized for the old policy should.
 *
 * Only memory here: the store steps that fill, top up and empty reserves are bucket-steps.ts's,
 * one customer at a time.
 */
export class Reserves {
  private readonly held = new Map<string, Reserve>();

  constructor(
    /** How long unused reserved tokens are kept (RATE_LIMIT_LEASE_MS); 0 = no reserves. */
    readonly holdMs: number,
  ) {}

  /** How many tokens to reserve in a step under `policy` (0 when reserves are off or the bucket is small). */
  sizeFor(policy: RateLimitPolicy): number {
    return this.holdMs > 0 ? reserveFor(policy) : 0;
  }

  /** Spends `cost` from the customer's reserve, or null when it does not hold that many (or is due back). */
  spend(customerId: string, cost: number, now: number): RateLimitDecision | null {
    const r = this.held.get(customerId);
    if (!r || r.tokens < cost || r.returnAt <= now) return null;
    r.tokens -= cost;
    const remaining = Math.min(r.limit, Math.floor(r.storeRemaining + r.tokens));
    return {
      allowed: true,
      limit: r.limit,
      remaining,
      retryAfterSeconds: 0,
      resetAt: now + Math.ceil(((r.limit - remaining) / r.refillPerSecond) * 1000),
    };
  }

  /**
   * Whether the customer's reserve, just spent from, has fallen below half its size and asks to
   * be topped up: true once per fill.
   */
  lowAfterSpend(customerId: string): boolean {
    const r = this.held.get(customerId);
    if (!r || r.topUpAsked || r.tokens * 2 >= r.size) return false;
    r.topUpAsked = true;
    return true;
  }

  /**
   * Tokens a top-up step takes under `policy`: one reserve (none if the policy is not the one the
   * reserve was filled under, or there is no reserve).
   */
  topUpSize(customerId: string, policy: RateLimitPolicy): number {
    const r = this.held.get(customerId);
    return r && samePolicy(r, policy) ? r.size : 0;
  }

  /**
   * After a top-up step, which took `reserved` tokens (up to `topUpSize`) and left `storeRemaining` in
   * the store: adds them, and the reserve counts as filled now. Under a changed policy it is
   * made due instead, so the next step gives it back.
   */
  topUp(customerId: string, reserved: number, policy: RateLimitPolicy, storeRemaining: number, now: number): void {
    const r = this.held.get(customerId);
    if (!r) {
      // Not reachable (only a serialized step drops a reserve); kept so no token is ever lost.
      if (reserved > 0) this.replace(customerId, reserved, policy, storeRemaining + reserved, now);
      return;
    }
    r.tokens += reserved;
    if (!samePolicy(r, policy)) {
      r.returnAt = now;
      return;
    }
    if (reserved === 0) return; // the bucket had none to spare: no more top-ups of this fill
    r.storeRemaining = storeRemaining;
    r.returnAt = now + this.holdMs;
    r.topUpAsked = false;
  }

  /** Unused tokens of the customer's reserve (what the next store step puts back). */
  unused(customerId: string): number {
    return this.held.get(customerId)?.tokens ?? 0;
  }

  /**
   * After a store step that put the old reserve back: holds the `reserved` tokens it took (none:
   * no reserve). `remaining` is what the step's last decision said was left, reserve included.
   */
  replace(customerId: string, reserved: number, policy: RateLimitPolicy, remaining: number, now: number): void {
    if (reserved <= 0) {
      this.held.delete(customerId);
      return;
    }
    this.held.set(customerId, {
      tokens: reserved,
      size: this.sizeFor(policy),
      topUpAsked: false,
      limit: policy.capacity,
      refillPerSecond: policy.refillPerSecond,
      storeRemaining: remaining - reserved,
      returnAt: now + this.holdMs,
    });
  }

  /** Forgets the customer's reserve and says how many unused tokens it held (to give back). */
  drop(customerId: string): number {
    const tokens = this.unused(customerId);
    this.held.delete(customerId);
    return tokens;
  }

  /** Customers whose reserve is due back at `now` (every one, with `all`). */
  due(now: number, all: boolean): string[] {
    return [...this.held].filter(([, r]) => all || r.returnAt <= now).map(([c]) => c);
  }
}

const samePolicy = (r: Reserve, p: RateLimitPolicy) => r.limit === p.capacity && r.refillPerSecond === p.refillPerSecond;
