import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { BucketSteps } from "../../src/domain/rate-limit/bucket-steps.js";
import { Reserves } from "../../src/domain/rate-limit/reserves.js";
import { type ChargeOutcome, isOverCapacity } from "../../src/domain/rate-limit/token-bucket.js";
import type { RateLimitPolicy } from "../../src/domain/types.js";
import { gate, removeWrappedStores, wrappedSqliteStore } from "../helpers/wrapped-store.js";

const SMALL: RateLimitPolicy = { capacity: 5, refillPerSecond: 0.001 };
const T0 = Date.UTC(2026, 0, 1);

afterEach(removeWrappedStores);

/**
 * Bucket steps over a real SQLite store whose first bucket step waits until released, like a slow
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
  const bucket = new BucketSteps(store, SMALL, new Reserves(250), () => T0, pino({ level: "silent" }));
  return { bucket, release, steps: () => steps };
}

/** The first charge's store step has begun (and waits at the gate). */
const stepStarted = () => new Promise((r) => setImmediate(r));
const shown = (o: ChargeOutcome) => (isOverCapacity(o) ? `over ${o.capacity}` : o.remaining);

describe("BucketSteps: charges queued behind a store step", () => {
  it("go to the store together in the next step, each decided as if charged alone in arrival order", async () => {
    const { bucket, release, steps } = gatedStore();
    const first = bucket.charge("c", 1);
    await stepStarted();
    const queued = Array.from({ length: 7 }, () => bucket.charge("c", 1));
    release();
    const outcomes = await Promise.all([first, ...queued]);
    const decisions = outcomes.map((o) => (isOverCapacity(o) ? expect.unreachable() : o));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0, 0]);
    for (const d of decisions.filter((d) => !d.allowed)) expect(d.retryAfterSeconds).toBeGreaterThan(0);
    expect(steps(), "store steps for 8 charges").toBe(2);
  });

  it("a charge above capacity is answered as such while the others in its step are still charged", async () => {
    const { bucket, release, steps } = gatedStore();
    const first = bucket.charge("c", 1);
    await stepStarted();
    const queued = [1, 99, 2].map((cost) => bucket.charge("c", cost));
    release();
    expect((await Promise.all([first, ...queued])).map(shown)).toEqual([4, 3, "over 5", 1]);
    expect(steps()).toBe(2);
  });

  it("a step in which every charge is above capacity takes no token", async () => {
    const { bucket, release } = gatedStore();
    const first = bucket.charge("c", 1);
    await stepStarted();
    const over = [6, 7].map((cost) => bucket.charge("c", cost));
    release();
    expect(shown(await first)).toBe(4);
    expect((await Promise.all(over)).map(shown)).toEqual(["over 5", "over 5"]);
    expect(shown(await bucket.charge("c", 1))).toBe(3);
  });
});
