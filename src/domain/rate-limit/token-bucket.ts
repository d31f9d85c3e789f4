import type { RateLimitDecision, RateLimitPolicy } from "../types.js";

/**
 * Token bucket arithmetic (SPEC §6), pure so that every store applies the very same rule inside
 * whatever atomic step it has (a SQLite transaction, a MongoDB compare-and-set).
 */
export interface BucketState {
  tokens: number;
  /** Epoch ms at which `tokens` was measured. */
  at: number;
}

/** A charge whose cost is above the bucket's capacity: it can never be allowed, so it is a client error. */
export interface OverCapacity {
  overCapacity: true;
  capacity: number;
}

/** What one charge is answered with: the bucket's decision, or that its cost can never fit. */
export type ChargeOutcome = RateLimitDecision | OverCapacity;

export const isOverCapacity = (o: ChargeOutcome): o is OverCapacity => "overCapacity" in o;

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
  /** What each queued request takes, in arrival order (empty: only put back). */
  costs: number[];
  /** Extra tokens to reserve if the last request the bucket decided was allowed (or there was none: a top-up). */
  reserve: number;
}

/**
 * One atomic step for a process that keeps a local reserve of tokens and charges the requests
 * that queued up meanwhile together (bucket-steps.ts): first put back `returned` unused tokens
 * (never above capacity), then take each cost in turn as `take` does (a refusal takes nothing, so
 * a later, smaller cost may still be allowed; a cost above capacity is answered `OverCapacity`
 * and takes nothing either), then, only if the last cost the bucket decided was allowed (or no
 * cost was given: a top-up of a reserve), up to `reserve` more that are left. The outcomes are
 * exactly those of the same requests charged one store step each at the same instant.
 */
export function exchange(
  state: BucketState,
  policy: RateLimitPolicy,
  now: number,
  op: ExchangeOp,
): { next: BucketState; outcomes: ChargeOutcome[]; reserved: number } {
  const current = refill(state, policy, now);
  let next: BucketState = { tokens: Math.min(policy.capacity, current.tokens + op.returned), at: current.at };
  let lastAllowed = op.costs.length === 0;
  const outcomes = op.costs.map((cost): ChargeOutcome => {
    if (cost > policy.capacity) return { overCapacity: true, capacity: policy.capacity };
    const step = take(next, policy, cost, now);
    next = step.next;
    lastAllowed = step.decision.allowed;
    return step.decision;
  });
  if (!lastAllowed) return { next, outcomes, reserved: 0 };
  const reserved = Math.max(0, Math.min(op.reserve, Math.floor(next.tokens)));
  return { next: { tokens: next.tokens - reserved, at: next.at }, outcomes, reserved };
}
