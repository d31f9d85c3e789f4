import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { BucketSteps } from "../../src/domain/rate-limit/bucket-steps.js";
import { Reserves } from "../../src/domain/rate-limit/reserves.js";
import { type ChargeOutcome, isOverCapacity } from "../../src/domain/rate-limit/token-bucket.js";
import type { RateLimitPolicy } from "../../src/domain/types.js";
import { gate, removeWrappedStores, wrappedSqliteStore } from "../helpers/wrapped-store.js";

const SMALL: RateLimitPolicy = { capacity: 5, refillPerSecond: 0.001 };
/** Reserves of 100 tokens (1 %); at T0 nothing refills, so every token can be accounted for. */
const BIG: RateLimitPolicy = { capacity: 10_000, refillPerSecond: 0.001 };
const T0 = Date.UTC(2026, 0, 1);

afterEach(removeWrappedStores);

/**
 * Bucket steps over a real SQLite store whose bucket step number `gatedStep` (the first by default)
 * waits until released, like a slow database, and that counts bucket steps: the charges made
 * meanwhile queue up behind that step.
 */
function gatedStore(policy = SMALL, gatedStep = 0) {
  const { passed, release } = gate();
  let steps = 0;
  const store = wrappedSqliteStore({
    updateBucket: (original) => async (...args) => {
      if (steps++ === gatedStep) await passed;
      return original(...args);
    },
  });
  const log = pino({ level: "silent" });
  const bucket = new BucketSteps(store, policy, new Reserves(250), () => T0, log);
  /** Tokens left in the shared bucket once every reserve went back (a fresh process without reserves charges 1). */
  const leftInBucket = async () => {
    await bucket.stop();
    const probe = await new BucketSteps(store, policy, new Reserves(0), () => T0, log).charge("c", 1);
    return isOverCapacity(probe) ? expect.unreachable() : probe.remaining + 1;
  };
  return { bucket, release, steps: () => steps, leftInBucket };
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

describe("BucketSteps: a large bucket's reserve", () => {
  const allowedCost = (o: ChargeOutcome, cost: number) => (!isOverCapacity(o) && o.allowed ? cost : 0);

  it("is topped up once half spent while its other half still answers charges at once", async () => {
    const { bucket, release, steps, leftInBucket } = gatedStore(BIG, 1);
    expect(shown(await bucket.charge("c", 1)), "the first step takes the charge and a reserve of 100").toBe(9_999);
    const fromMemory = Array.from({ length: 100 }, () => bucket.charge("c", 1));
    expect(fromMemory.filter((o) => o instanceof Promise), "charges waiting for the store").toHaveLength(0);
    await stepStarted();
    expect(steps(), "the top-up step (held at its gate) began once 51 were spent").toBe(2);
    const waits = bucket.charge("c", 1);
    expect(waits, "the reserve is spent: the next charge waits for the top-up").toBeInstanceOf(Promise);
    release();
    expect(shown(await waits), "served from the topped-up reserve").toBe(9_799 + 99);
    expect(steps(), "no step of its own").toBe(2);
    expect(await leftInBucket(), "every token taken is either admitted or given back").toBe(10_000 - 102);
  });

  it("is given back before a step that charges what it cannot cover, and not spent while that step runs", async () => {
    const { bucket, release, leftInBucket } = gatedStore(BIG, 1);
    let admitted = allowedCost(await bucket.charge("c", 1), 1);
    for (let i = 0; i < 40; i++) admitted += allowedCost(await bucket.charge("c", 1), 1);
    const large = bucket.charge("c", 70); // 60 left in the reserve: a store step (held at its gate)
    await stepStarted();
    const during = bucket.charge("c", 1);
    expect(during, "the reserve went back with the step: a charge meanwhile waits for the next one").toBeInstanceOf(Promise);
    release();
    admitted += allowedCost(await large, 70) + allowedCost(await during, 1);
    expect(admitted).toBe(112);
    expect(await leftInBucket(), "no token both given back and spent").toBe(10_000 - admitted);
  });
});
