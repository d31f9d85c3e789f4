import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/domain/errors.js";
import { INTERNAL, unitService } from "../helpers/unit-service.js";

/**
 * Rate-limit decisions (SPEC §6) through ChargeRateLimit and SetRateLimit, with a hand-moved
 * clock: a full bucket for a new customer, refill over time, one bucket per customer, a cost
 * above capacity refused as a bad request, and a policy change that takes effect and is audited.
 */
const codeOf = (e: { cause?: unknown }) => (e.cause instanceof ApiError ? e.cause.code : "not an ApiError");

describe("ChargeRateLimit", () => {
  it("a new customer starts full; each charge takes its cost; refused once empty with the wait until enough refills", async () => {
    const s = unitService({ capacity: 5, refillPerSecond: 0.5 });
    const customer = randomUUID();
    const charge = async (cost = 0) => (await s.call("chargeRateLimit", { customerId: customer, cost }, INTERNAL)).res;
    expect(await charge()).toMatchObject({ allowed: true, limit: 5, remaining: 4 }); // cost 0 means 1
    expect(await charge(4)).toMatchObject({ allowed: true, remaining: 0 });
    const refused = await charge(2);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 4 });
    s.clock.advance(4000);
    expect(await charge(2)).toMatchObject({ allowed: true, remaining: 0 });
    s.clock.advance(60_000);
    expect(await charge()).toMatchObject({ allowed: true, remaining: 4 }); // refill stops at capacity
  });

  it("buckets are per customer: draining one leaves another full", async () => {
    const s = unitService({ capacity: 3, refillPerSecond: 0.001 });
    const a = randomUUID();
    const b = randomUUID();
    for (let i = 0; i < 3; i++) await s.call("chargeRateLimit", { customerId: a }, INTERNAL);
    expect((await s.call("chargeRateLimit", { customerId: a }, INTERNAL)).res.allowed).toBe(false);
    expect((await s.call("chargeRateLimit", { customerId: b }, INTERNAL)).res).toMatchObject({ allowed: true, remaining: 2 });
  });

  it("a cost above the capacity is invalid_argument and takes nothing; a bad customer id too", async () => {
    const s = unitService({ capacity: 3 });
    const customer = randomUUID();
    const e = await s.failure("chargeRateLimit", { customerId: customer, cost: 4 }, INTERNAL);
    expect(codeOf(e)).toBe("invalid_argument");
    expect(e.rawMessage).toContain("capacity of 3");
    expect((await s.call("chargeRateLimit", { customerId: customer, cost: 3 }, INTERNAL)).res.allowed).toBe(true);
    expect(codeOf(await s.failure("chargeRateLimit", { customerId: "x" }, INTERNAL))).toBe("invalid_argument");
  });

  it("many concurrent charges spend every token exactly once", async () => {
    const s = unitService({ capacity: 20, refillPerSecond: 0.001 });
    const customer = randomUUID();
    const results = await Promise.all(Array.from({ length: 50 }, () => s.call("chargeRateLimit", { customerId: customer }, INTERNAL)));
    const admitted = results.map((r) => r.res).filter((d) => d.allowed);
    expect(admitted.map((d) => d.remaining).sort((x, y) => y - x)).toEqual(Array.from({ length: 20 }, (_, i) => 19 - i));
  });
});

describe("SetRateLimit", () => {
  it("a customer's own policy replaces the defaults at once and is audited with who set it", async () => {
    const s = unitService({ capacity: 2, refillPerSecond: 0.001 });
    const customer = randomUUID();
    await s.call("chargeRateLimit", { customerId: customer }, INTERNAL);
    const { res } = await s.call("setRateLimit", { customerId: customer.toUpperCase(), capacity: 100, refillPerSecond: 5 }, INTERNAL, { "x-caller": "billing" });
    expect(res).toMatchObject({ customerId: customer, capacity: 100, refillPerSecond: 5 });
    expect((await s.call("chargeRateLimit", { customerId: customer }, INTERNAL)).res.limit).toBe(100);
    expect((await s.call("chargeRateLimit", { customerId: randomUUID() }, INTERNAL)).res.limit).toBe(2);
    await s.flush();
    const [event] = s.store.auditEvents().filter((e) => e.action === "rate_limit.updated");
    expect(event).toMatchObject({ customerId: customer, actor: { type: "internal", name: "billing" }, reason: "capacity=100 refill_per_second=5" });
  });

  it("refuses a capacity below 1, not an integer or above the bound, and a refill of 0 or less; nothing changes", async () => {
    const s = unitService({ capacity: 2 });
    const customer = randomUUID();
    for (const [capacity, refillPerSecond] of [[0, 1], [1.5, 1], [1_000_001, 1], [10, 0], [10, -1]] as const) {
      const e = await s.failure("setRateLimit", { customerId: customer, capacity, refillPerSecond }, INTERNAL);
      expect(codeOf(e), `${capacity}/${refillPerSecond}`).toBe("invalid_argument");
    }
    expect((await s.call("chargeRateLimit", { customerId: customer }, INTERNAL)).res.limit).toBe(2);
    await s.flush();
    expect(s.store.auditEvents()).toEqual([]);
  });
});
