import { expect } from "vitest";
import { bucketStoreSteps } from "./metrics.js";
import type { RpcClient } from "./rpc-clients.js";
import { uuid } from "./rest.js";
import { sleep } from "./server.js";

/** Capacity of the bucket under test: its reserve is 1 % = 100 tokens per process. */
const CAPACITY = 10_000;
const RESERVE = 100;
const RATE = 0.01;

/**
 * SPEC §6 through per-process reserves (src/domain/rate-limit/reserves.ts), checked the same way for
 * WORKERS and for replicas: `processes` servers reached through `clients` charge one customer's
 * bucket of 10,000 tokens 10,300 times, 48 in flight.
 *
 * - never more admitted than capacity + elapsed × rate (the client's elapsed time bounds the
 *   bucket's own);
 * - at most `processes` × 1.5 × reserve refused early (a reserve half spent is topped up by one more);
 * - about one store step per reserve, not one per charge (summed over `metricsPorts`);
 * - reserves unused for RATE_LIMIT_LEASE_MS (250 ms) go back to the bucket: charging on later,
 *   at least the capacity is admitted in all, and still never more than the bound.
 */
export async function checkLargeBucket(clients: RpcClient[], auth: Record<string, string>, processes: number, metricsPorts: (number | null)[]) {
  const storeSteps = () => bucketStoreSteps(metricsPorts);
  const customerId = uuid();
  const set = await clients[0]!.call("setRateLimit", { customerId, capacity: CAPACITY, refillPerSecond: RATE }, auth);
  expect(set.ok).toBe(true);
  const started = Date.now();
  /** `n` charges, 48 in flight, spread over every client. */
  const charge = async (n: number) => {
    let admitted = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 48 }, async (_, lane) => {
        while (next < n) {
          next++;
          const r = await clients[lane % clients.length]!.call("chargeRateLimit", { customerId }, auth);
          if (!r.ok) throw new Error(`charge failed: ${JSON.stringify(r)}`);
          if (r.res.allowed) admitted++;
        }
      }),
    );
    return admitted;
  };
  const stepsBefore = await storeSteps();
  const first = await charge(CAPACITY + 300);
  const steps = (await storeSteps()) - stepsBefore;
  const bound = () => CAPACITY + Math.ceil(((Date.now() - started) / 1000) * RATE);
  let later = 0;
  for (let round = 0; round < 6; round++) {
    await sleep(700);
    const got = await charge(250);
    later += got;
    if (got === 0) break;
  }
  // eslint-disable-next-line no-console
  console.log(`[large bucket] ${processes} processes: ${first} of ${CAPACITY + 300} admitted in ${steps} store steps, ${later} more after the reserves went back; bound ${bound()}`);
  expect(steps, `store steps for ${CAPACITY + 300} charges`).toBeLessThan(1_000);
  expect(first, "admitted more than SPEC §6 allows").toBeLessThanOrEqual(bound());
  expect(first, `refused more than ${processes} processes x 1.5 x ${RESERVE} reserved tokens early`).toBeGreaterThanOrEqual(CAPACITY - processes * 1.5 * RESERVE);
  expect(first + later, "tokens were lost in reserves").toBeGreaterThanOrEqual(CAPACITY);
  expect(first + later).toBeLessThanOrEqual(bound());
}
