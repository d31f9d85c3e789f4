import { describe, expect, it } from "vitest";
import {
  type BucketState,
  type ChargeOutcome,
  exchange,
  fullBucket,
  isOverCapacity,
  refill,
  take,
} from "../../src/domain/rate-limit/token-bucket.js";
import type { RateLimitDecision, RateLimitPolicy } from "../../src/domain/types.js";

const DEFAULT: RateLimitPolicy = { capacity: 60, refillPerSecond: 1 };
const T0 = Date.UTC(2026, 0, 1);

/** The outcomes of a step that had no cost above capacity, as decisions. */
function decided(r: { outcomes: ChargeOutcome[] }): RateLimitDecision[] {
  expect(r.outcomes.filter(isOverCapacity)).toEqual([]);
  return r.outcomes as RateLimitDecision[];
}

describe("fullBucket", () => {
  it("starts at capacity", () => {
    expect(fullBucket(DEFAULT, T0)).toEqual({ tokens: 60, at: T0 });
    expect(fullBucket({ capacity: 5, refillPerSecond: 2 }, T0).tokens).toBe(5);
  });
});

describe("refill", () => {
  it("adds elapsed × rate", () => {
    expect(refill({ tokens: 10, at: T0 }, DEFAULT, T0 + 5_000).tokens).toBeCloseTo(15);
    expect(refill({ tokens: 0, at: T0 }, { capacity: 100, refillPerSecond: 4 }, T0 + 2_500).tokens).toBeCloseTo(10);
    expect(refill({ tokens: 0, at: T0 }, DEFAULT, T0 + 500).tokens).toBeCloseTo(0.5);
  });

  it("caps at capacity however long the bucket sat idle", () => {
    expect(refill({ tokens: 59, at: T0 }, DEFAULT, T0 + 10_000).tokens).toBe(60);
    expect(refill({ tokens: 0, at: T0 }, DEFAULT, T0 + 86_400_000).tokens).toBe(60);
  });

  it("never removes tokens when the clock goes backwards", () => {
    const s = refill({ tokens: 10, at: T0 }, DEFAULT, T0 - 5_000);
    expect(s.tokens).toBe(10);
    expect(s.at).toBe(T0);
  });
});

describe("take", () => {
  it("an allowed take removes exactly the cost", () => {
    const { next, decision } = take({ tokens: 60, at: T0 }, DEFAULT, 3, T0);
    expect(decision.allowed).toBe(true);
    expect(next.tokens).toBe(57);
    expect(decision).toMatchObject({ limit: 60, remaining: 57, retryAfterSeconds: 0 });
  });

  it("a refused take consumes nothing", () => {
    const state: BucketState = { tokens: 2, at: T0 };
    const { next, decision } = take(state, DEFAULT, 3, T0);
    expect(decision.allowed).toBe(false);
    expect(next.tokens).toBe(2);
    expect(decision.remaining).toBe(2);
    // and the tokens are still there for a smaller take
    const again = take(next, DEFAULT, 2, T0);
    expect(again.decision.allowed).toBe(true);
    expect(again.next.tokens).toBe(0);
  });

  it("retryAfterSeconds rounds the wait up to whole seconds, at least 1", () => {
    // 0.5 tokens missing at 1/s -> 0.5 s -> 1
    expect(take({ tokens: 0.5, at: T0 }, DEFAULT, 1, T0).decision.retryAfterSeconds).toBe(1);
    // 2.5 tokens missing at 1/s -> 2.5 s -> 3
    expect(take({ tokens: 0.5, at: T0 }, DEFAULT, 3, T0).decision.retryAfterSeconds).toBe(3);
    // exactly 2 missing at 1/s -> 2
    expect(take({ tokens: 0, at: T0 }, DEFAULT, 2, T0).decision.retryAfterSeconds).toBe(2);
    // 1 missing at 10/s -> 0.1 s -> still at least 1
    expect(take({ tokens: 0, at: T0 }, { capacity: 60, refillPerSecond: 10 }, 1, T0).decision.retryAfterSeconds).toBe(1);
    // 5 missing at 0.5/s -> 10 s
    expect(take({ tokens: 0, at: T0 }, { capacity: 60, refillPerSecond: 0.5 }, 5, T0).decision.retryAfterSeconds).toBe(10);
  });

  it("remaining is floored to whole tokens", () => {
    const { decision } = take({ tokens: 10, at: T0 }, DEFAULT, 1, T0 + 700);
    expect(decision.remaining).toBe(9); // 10.7 - 1 = 9.7
  });

  it("resetAt is when the bucket is full again", () => {
    const { decision } = take({ tokens: 60, at: T0 }, DEFAULT, 10, T0);
    expect(decision.resetAt).toBe(T0 + 10_000);
  });

  it("a 60/1s bucket allows 60 takes at one instant, refuses the 61st, and allows again 1 s later", () => {
    let state = fullBucket(DEFAULT, T0);
    for (let i = 1; i <= 60; i++) {
      const r = take(state, DEFAULT, 1, T0);
      expect(r.decision.allowed, `take ${i}`).toBe(true);
      expect(r.decision.remaining).toBe(60 - i);
      state = r.next;
    }
    const refused = take(state, DEFAULT, 1, T0);
    expect(refused.decision.allowed).toBe(false);
    expect(refused.decision.retryAfterSeconds).toBe(1);
    expect(refused.decision.remaining).toBe(0);
    state = refused.next;

    // 999 ms later: still not a whole token
    expect(take(state, DEFAULT, 1, T0 + 999).decision.allowed).toBe(false);

    const later = take(state, DEFAULT, 1, T0 + 1_000);
    expect(later.decision.allowed).toBe(true);
    expect(later.decision.remaining).toBe(0);
    expect(take(later.next, DEFAULT, 1, T0 + 1_000).decision.allowed).toBe(false);
  });
});

describe("exchange (a step of a process that keeps a reserve)", () => {
  const BIG: RateLimitPolicy = { capacity: 10_000, refillPerSecond: 1 };

  it("takes the cost plus up to the reserve asked for, and says how many it reserved", () => {
    const r = exchange({ tokens: 5_000, at: T0 }, BIG, T0, { returned: 0, costs: [1], reserve: 100 });
    expect(decided(r)[0]!.allowed).toBe(true);
    expect(r.reserved).toBe(100);
    expect(r.next.tokens).toBe(4_899);
  });

  it("reserves only what is left after the cost, never more", () => {
    const r = exchange({ tokens: 30, at: T0 }, BIG, T0, { returned: 0, costs: [1], reserve: 100 });
    expect(r.reserved).toBe(29);
    expect(r.next.tokens).toBe(0);
  });

  it("a refusal reserves and takes nothing, but returned tokens are still put back", () => {
    const r = exchange({ tokens: 0.5, at: T0 }, BIG, T0, { returned: 2, costs: [5], reserve: 100 });
    expect(decided(r)[0]!.allowed).toBe(false);
    expect(r.reserved).toBe(0);
    expect(r.next.tokens).toBe(2.5);
  });

  it("giving tokens back never fills the bucket above capacity", () => {
    const r = exchange({ tokens: 9_990, at: T0 }, BIG, T0 + 5_000, { returned: 100, costs: [], reserve: 0 });
    expect(r.next.tokens).toBe(10_000);
    expect(r.reserved).toBe(0);
    expect(decided(r)).toEqual([]);
  });

  it("a step with no charge (a reserve's top-up) reserves what is left, up to the reserve", () => {
    const r = exchange({ tokens: 5_000, at: T0 }, BIG, T0, { returned: 0, costs: [], reserve: 100 });
    expect([r.reserved, r.next.tokens]).toEqual([100, 4_900]);
    const low = exchange({ tokens: 30.5, at: T0 }, BIG, T0, { returned: 0, costs: [], reserve: 100 });
    expect([low.reserved, low.next.tokens]).toEqual([30, 0.5]);
  });

  it("charges queued requests in order with the same decisions as one take each, then reserves only if the last was allowed", () => {
    const small: RateLimitPolicy = { capacity: 20, refillPerSecond: 1 };
    const start: BucketState = { tokens: 4, at: T0 };
    const costs = [1, 2, 3, 1, 1];
    const batched = exchange(start, small, T0 + 500, { returned: 0, costs, reserve: 0 });
    let state = start;
    const oneByOne = costs.map((cost) => {
      const r = take(state, small, cost, T0 + 500);
      state = r.next;
      return r.decision;
    });
    expect(decided(batched)).toEqual(oneByOne);
    // 4.5 tokens: 1 and 2 are allowed, 3 is refused (1.5 left) and takes nothing, then 1 is allowed, the last 1 refused
    expect(decided(batched).map((d) => d.allowed)).toEqual([true, true, false, true, false]);
    expect(batched.next).toEqual(state);

    const withReserve = exchange({ tokens: 5_000, at: T0 }, BIG, T0, { returned: 0, costs: [1, 1, 1], reserve: 100 });
    expect(decided(withReserve).map((d) => d.remaining)).toEqual([4_999, 4_998, 4_997]);
    expect(withReserve.reserved).toBe(100);
    expect(withReserve.next.tokens).toBe(4_897);
    const lastRefused = exchange({ tokens: 2, at: T0 }, BIG, T0, { returned: 0, costs: [1, 5], reserve: 100 });
    expect(lastRefused.reserved).toBe(0);
    expect(lastRefused.next.tokens).toBe(1);
  });

  it("a cost above capacity is answered as data, takes nothing, and leaves the others' decisions as they were", () => {
    const small: RateLimitPolicy = { capacity: 5, refillPerSecond: 1 };
    const r = exchange({ tokens: 5, at: T0 }, small, T0, { returned: 0, costs: [1, 6, 2], reserve: 0 });
    expect(r.outcomes[1]).toEqual({ overCapacity: true, capacity: 5 });
    expect(r.outcomes.map((o) => (isOverCapacity(o) ? "over" : o.remaining))).toEqual([4, "over", 2]);
    expect(r.next.tokens).toBe(2);

    const onlyOver = exchange({ tokens: 3, at: T0 }, small, T0, { returned: 0, costs: [6, 7], reserve: 0 });
    expect(onlyOver.outcomes.every(isOverCapacity)).toBe(true);
    expect(onlyOver.next).toEqual({ tokens: 3, at: T0 });
    expect(onlyOver.reserved).toBe(0);
  });

  it("a reserve follows the last cost the bucket decided, not a cost above capacity after it", () => {
    const r = exchange({ tokens: 5_000, at: T0 }, BIG, T0, { returned: 0, costs: [1, 20_000], reserve: 100 });
    expect(r.reserved).toBe(100);
    expect(r.next.tokens).toBe(4_899);
  });
});
