import type { Logger } from "pino";
import type { AuditLog } from "../audit-log.js";
import { invalid } from "../errors.js";
import type { Store } from "../store.js";
import type { AuditActor, RateLimitDecision, RateLimitPolicy, RequestOrigin } from "../types.js";
import { BucketSteps } from "./bucket-steps.js";
import { Reserves } from "./reserves.js";
import { isOverCapacity } from "./token-bucket.js";
import { validUuid } from "../validation.js";

export const POLICY_LIMITS = { capacityMax: 1_000_000, refillMax: 1_000_000 } as const;

export interface RateLimiterOptions {
  /** The bucket of a customer without a policy of its own (RATE_LIMIT_CAPACITY, RATE_LIMIT_REFILL_PER_SEC). */
  defaults: RateLimitPolicy;
  /** How long this process keeps unused reserved tokens (RATE_LIMIT_LEASE_MS); 0 = no reserves. */
  reserveMs: number;
  /** Told every decision, for metrics. */
  observe?: (allowed: boolean) => void;
}

/**
 * Rate limiting (SPEC §6), the module's public face: per-customer token buckets kept in the store,
 * so every process and replica shares them. A customer is any UUID; an unknown one starts with a
 * full bucket of the defaults or of its own policy (set by `SetRateLimit`).
 *
 * The module, inside out: token-bucket.ts is the pure arithmetic (a cost above capacity is one of
 * its outcomes), reserves.ts the tokens this process holds for large buckets, bucket-steps.ts the
 * one per-customer queue that batches charges into store steps, and this file `charge` and
 * `setPolicy` with its audit event.
 */
export class RateLimiter {
  private readonly steps: BucketSteps;
  private readonly observe: (allowed: boolean) => void;

  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    now: () => number,
    log: Logger,
    opts: RateLimiterOptions,
  ) {
    this.steps = new BucketSteps(store, opts.defaults, new Reserves(opts.reserveMs), now, log);
    this.observe = opts.observe ?? (() => {});
  }

  /** The ChargeRateLimit RPC: validates the customer id; a cost of 0 means the default, 1. */
  async chargeCustomer(requestedCustomer: string, cost: number): Promise<RateLimitDecision> {
    return this.charge(validUuid(requestedCustomer, "customer_id"), cost === 0 ? 1 : cost);
  }

  /** Takes `cost` tokens from the customer's bucket; a cost above its capacity is invalid_argument. */
  async charge(customerId: string, cost: number): Promise<RateLimitDecision> {
    const outcome = await this.steps.charge(customerId, cost);
    if (isOverCapacity(outcome)) throw invalid(`cost ${cost} exceeds the bucket capacity of ${outcome.capacity}`);
    this.observe(outcome.allowed);
    return outcome;
  }

  /** Sets a customer's bucket (SPEC §6: "raisable per customer by an internal call"), audited. */
  async setPolicy(
    requestedCustomer: string,
    policy: RateLimitPolicy,
    actor: AuditActor,
    origin: RequestOrigin,
  ): Promise<{ customerId: string; policy: RateLimitPolicy }> {
    const customerId = validUuid(requestedCustomer, "customer_id");
    if (!Number.isInteger(policy.capacity) || policy.capacity < 1 || policy.capacity > POLICY_LIMITS.capacityMax) {
      throw invalid(`capacity must be an integer from 1 to ${POLICY_LIMITS.capacityMax}`);
    }
    if (!(policy.refillPerSecond > 0) || policy.refillPerSecond > POLICY_LIMITS.refillMax) {
      throw invalid(`refill_per_second must be greater than 0 and at most ${POLICY_LIMITS.refillMax}`);
    }
    await this.store.setRateLimitPolicy(customerId, policy);
    // This process's reserve was sized for the old policy; other processes' go back within reserveMs.
    await this.steps.giveBack(customerId);
    this.audit.record({
      customerId,
      action: "rate_limit.updated",
      actor,
      target: null,
      outcome: "success",
      reason: `capacity=${policy.capacity} refill_per_second=${policy.refillPerSecond}`,
      ...origin,
    });
    return { customerId, policy };
  }

  /** Starts giving unused reserves back on time. */
  start(): void {
    this.steps.start();
  }

  /** Gives every reserve back (shutdown, before the store closes). */
  stop(): Promise<void> {
    return this.steps.stop();
  }
}
