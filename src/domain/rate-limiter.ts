import type { Store } from "./store.js";
import type { AuditLog } from "./audit-log.js";
import { invalid } from "./errors.js";
import type { RateLimitLeases } from "./rate-limit-leases.js";
import type { AuditActor, RateLimitDecision, RateLimitPolicy, RequestOrigin } from "./types.js";

export const POLICY_LIMITS = { capacityMax: 1_000_000, refillMax: 1_000_000 } as const;

/**
 * Per-customer token buckets (SPEC §6), kept in the store so every process and replica shares
 * them. A customer is any UUID; an unknown one starts with a full bucket of the defaults or of
 * its own policy (set by `SetRateLimit`). Charges go through this process's reserves
 * (rate-limit-leases.ts), which keep large buckets off the store on the hot path.
 */
export class RateLimiter {
  constructor(
    private readonly store: Store,
    private readonly leases: RateLimitLeases,
    private readonly defaults: RateLimitPolicy,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    /** Told every decision, for metrics. */
    private readonly observe: (allowed: boolean) => void = () => {},
  ) {}

  async charge(customerId: string, cost: number): Promise<RateLimitDecision> {
    const decision = await this.leases.charge(customerId, cost, (policy) => {
      if (cost > policy.capacity) throw invalid(`cost ${cost} exceeds the bucket capacity of ${policy.capacity}`);
    });
    this.observe(decision.allowed);
    return decision;
  }

  async policy(customerId: string): Promise<RateLimitPolicy> {
    return (await this.store.getRateLimitPolicy(customerId)) ?? this.defaults;
  }

  /** Sets a customer's bucket (SPEC §6: "raisable per customer by an internal call"), audited. */
  async setPolicy(customerId: string, policy: RateLimitPolicy, actor: AuditActor, origin: RequestOrigin): Promise<RateLimitPolicy> {
    if (!Number.isInteger(policy.capacity) || policy.capacity < 1 || policy.capacity > POLICY_LIMITS.capacityMax) {
      throw invalid(`capacity must be an integer from 1 to ${POLICY_LIMITS.capacityMax}`);
    }
    if (!(policy.refillPerSecond > 0) || policy.refillPerSecond > POLICY_LIMITS.refillMax) {
      throw invalid(`refill_per_second must be greater than 0 and at most ${POLICY_LIMITS.refillMax}`);
    }
    await this.store.setRateLimitPolicy(customerId, policy);
    // This process's reserve was sized for the old policy; other processes' expire within leaseMs.
    await this.leases.release(customerId);
    this.audit.record({
      customerId,
      action: "rate_limit.updated",
      actor,
      target: null,
      outcome: "success",
      reason: `capacity=${policy.capacity} refill_per_second=${policy.refillPerSecond}`,
      ...origin,
    });
    return policy;
  }
}
