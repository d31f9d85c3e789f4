import type { RateLimitDecision, RateLimitPolicy } from "./types.js";

/**
 * Token bucket arithmetic (SPEC §6), pure so that every store applies the very same rule inside
 * whatever atomic step it has (a SQLite transaction, a MongoDB compare-and-set).
 */
export interface BucketState {
  tokens: number;
  /** Epoch ms at which `tokens` was measured. */
  at: number;
}

/** A customer never seen before starts with a full bucket. */
export const fullBucket = (policy: RateLimitPolicy, now: number): BucketState => ({
  tokens: policy.capacity,
  at: now,
});

export function refill(state: BucketState, policy: RateLimitPolicy, now: number): BucketState {
  const elapsed = Math.max(0, now - state.at) / 1000;
  return { tokens: Math.min(policy.capacity, state.tokens + elapsed * policy.refillPerSecond), at: Math.max(now, state.at) };
}

/**
 * Takes `cost` tokens if the bucket holds them; a refused request takes nothing. Returns the
 * decision and the state to persist (unchanged apart from the refill when refused).
 */
export function take(
  state: BucketState,
  policy: RateLimitPolicy,
  cost: number,
  now: number,
): { next: BucketState; decision: RateLimitDecision } {
  const current = refill(state, policy, now);
  const allowed = current.tokens >= cost;
  const next = allowed ? { tokens: current.tokens - cost, at: current.at } : current;
  const missing = allowed ? 0 : cost - next.tokens;
  return {
    next,
    decision: {
      allowed,
      limit: policy.capacity,
      remaining: Math.floor(next.tokens),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(missing / policy.refillPerSecond)),
      resetAt: next.at + Math.ceil(((policy.capacity - next.tokens) / policy.refillPerSecond) * 1000),
    },
  };
}

export interface ExchangeOp {
  /** Unused reserved tokens put back first. */
  returned: number;
  /** Tokens the request takes (0: only put back). */
  cost: number;
  /** Extra tokens to reserve if the cost is allowed. */
  reserve: number;
}

/**
 * One atomic step for a process that keeps a local reserve of tokens (rate-limit-leases.ts):
 * first put back `returned` unused tokens (never above capacity), then take `cost` as `take`
 * does and, only if that is allowed, up to `reserve` more that are left. A refusal takes nothing.
 */
export function exchange(
  state: BucketState,
  policy: RateLimitPolicy,
  now: number,
  op: ExchangeOp,
): { next: BucketState; decision: RateLimitDecision; reserved: number } {
  const current = refill(state, policy, now);
  const restored = { tokens: Math.min(policy.capacity, current.tokens + op.returned), at: current.at };
  const { next, decision } = take(restored, policy, op.cost, now);
  if (!decision.allowed) return { next, decision, reserved: 0 };
  const reserved = Math.max(0, Math.min(op.reserve, Math.floor(next.tokens)));
  return { next: { tokens: next.tokens - reserved, at: next.at }, decision, reserved };
}
