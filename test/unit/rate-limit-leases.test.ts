import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RateLimitLeases } from "../../src/domain/rate-limit-leases.js";
import type { RateLimitPolicy } from "../../src/domain/types.js";
import { gate, removeWrappedStores, wrappedSqliteStore } from "../helpers/wrapped-store.js";

const SMALL: RateLimitPolicy = { capacity: 5, refillPerSecond: 0.001 };
const T0 = Date.UTC(2026, 0, 1);

afterEach(removeWrappedStores);

/**
 * Leases over a real SQLite store whose first bucket step waits until released, like a slow
 * database, and that counts bucket steps: the charges made meanwhile queue up behind that step.
 */
function gatedStore() {
  const { passed, release } = gate();
  let steps = 0;
  const store = wrappedSqliteStore({
    updateBucket: (original) => async (...args) => {
      if (steps++ === 0) await passed;
      return original(...args);
    },
  });
  const leases = new RateLimitLeases(store, SMALL, () => T0, { leaseMs: 250 }, pino({ level: "silent" }));
  return { leases, release, steps: () => steps };
}

/** The first charge's store step has begun (and waits at the gate). */
const stepStarted = () => new Promise((r) => setImmediate(r));
const noCheck = () => {};
const atMostCapacity = (cost: number) => (p: RateLimitPolicy) => {
  if (cost > p.capacity) throw new Error(`cost ${cost} exceeds the bucket capacity of ${p.capacity}`);
};

describe("RateLimitLeases: charges queued behind a store step", () => {
  it("go to the store together in the next step, each decided as if charged alone in arrival order", async () => {
    const { leases, release, steps } = gatedStore();
    const first = leases.charge("c", 1, noCheck);
    await stepStarted();
    const queued = Array.from({ length: 7 }, () => leases.charge("c", 1, noCheck));
    release();
    const decisions = await Promise.all([first, ...queued]);
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0, 0]);
    for (const d of decisions.filter((d) => !d.allowed)) expect(d.retryAfterSeconds).toBeGreaterThan(0);
    expect(steps(), "store steps for 8 charges").toBe(2);
  });

  it("a charge that fails validation gets its own error while the others in its step are still charged", async () => {
    const { leases, release, steps } = gatedStore();
    const first = leases.charge("c", 1, atMostCapacity(1));
    await stepStarted();
    const queued = [1, 99, 2].map((cost) => leases.charge("c", cost, atMostCapacity(cost)));
    release();
    const outcomes = await Promise.allSettled([first, ...queued]);
    expect(outcomes.map((o) => (o.status === "fulfilled" ? o.value.remaining : (o.reason as Error).message))).toEqual([
      4,
      3,
      "cost 99 exceeds the bucket capacity of 5",
      1,
    ]);
    expect(steps()).toBe(2);
  });

  it("a step in which every charge fails validation takes no token", async () => {
    const { leases, release } = gatedStore();
    const first = leases.charge("c", 1, noCheck);
    await stepStarted();
    const invalid = [6, 7].map((cost) => leases.charge("c", cost, atMostCapacity(cost)));
    release();
    expect((await first).remaining).toBe(4);
    for (const r of await Promise.allSettled(invalid)) expect(r.status).toBe("rejected");
    expect((await leases.charge("c", 1, noCheck)).remaining).toBe(3);
  });
});
