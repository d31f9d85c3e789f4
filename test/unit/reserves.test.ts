import { describe, expect, it } from "vitest";
import { MAX_RESERVE, Reserves, reserveFor } from "../../src/domain/rate-limit/reserves.js";

const T0 = Date.UTC(2026, 0, 1);
const BIG = { capacity: 10_000, refillPerSecond: 10 };

describe("Reserves", () => {
  it("are 1 % of capacity, at most 1 000 tokens, and none for small buckets or when switched off", () => {
    expect(reserveFor(BIG)).toBe(100);
    expect(reserveFor({ capacity: 1_000_000, refillPerSecond: 1 })).toBe(MAX_RESERVE);
    expect(reserveFor({ capacity: 60, refillPerSecond: 1 })).toBe(0);
    expect(new Reserves(0).sizeFor(BIG)).toBe(0);
    expect(new Reserves(250).sizeFor(BIG)).toBe(100);
  });

  it("serve charges from memory until they run out, counting the store's remaining in the header value", () => {
    const r = new Reserves(250);
    expect(r.spend("c", 1, T0)).toBeNull();
    r.replace("c", 3, BIG, 5_003, T0);
    expect(r.spend("c", 1, T0)).toMatchObject({ allowed: true, limit: 10_000, remaining: 5_002 });
    expect(r.spend("c", 2, T0)).toMatchObject({ allowed: true, remaining: 5_000 });
    expect(r.spend("c", 1, T0), "empty").toBeNull();
    expect(r.unused("c")).toBe(0);
  });

  it("ask for a top-up once half spent, once per fill; a top-up adds one reserve and counts as a fill", () => {
    const r = new Reserves(250);
    r.replace("c", 100, BIG, 5_100, T0);
    for (let i = 0; i < 50; i++) r.spend("c", 1, T0);
    expect(r.lowAfterSpend("c"), "50 of 100 left").toBe(false);
    r.spend("c", 1, T0);
    expect(r.lowAfterSpend("c"), "49 left").toBe(true);
    r.spend("c", 1, T0);
    expect(r.lowAfterSpend("c"), "asked already").toBe(false);
    expect(r.topUpSize("c", BIG)).toBe(100);
    r.topUp("c", 100, BIG, 4_900, T0 + 200);
    expect(r.unused("c"), "48 left + 100").toBe(148);
    expect(r.spend("c", 1, T0 + 200)).toMatchObject({ remaining: 4_900 + 147 });
    expect(r.due(T0 + 449, false), "due holdMs after the top-up, not the first fill").toEqual([]);
    expect(r.due(T0 + 450, false)).toEqual(["c"]);
  });

  it("a top-up under another policy adds nothing and makes the reserve due, so the next step gives it back", () => {
    const r = new Reserves(250);
    const raised = { ...BIG, capacity: 20_000 };
    r.replace("c", 100, BIG, 5_100, T0);
    expect(r.topUpSize("c", raised)).toBe(0);
    expect(r.topUpSize("other", BIG), "no reserve").toBe(0);
    r.topUp("c", 0, raised, 5_000, T0 + 10);
    expect(r.spend("c", 1, T0 + 10)).toBeNull();
    expect(r.due(T0 + 10, false)).toEqual(["c"]);
    expect(r.drop("c")).toBe(100);
  });

  it("are due back after holdMs; drop says how many unused tokens to give back", () => {
    const r = new Reserves(250);
    r.replace("a", 10, BIG, 100, T0);
    r.replace("b", 10, BIG, 100, T0 + 200);
    expect(r.due(T0 + 249, false)).toEqual([]);
    expect(r.due(T0 + 250, false)).toEqual(["a"]);
    expect(r.spend("a", 1, T0 + 250), "a reserve due back is not spent").toBeNull();
    expect(r.due(T0, true).sort()).toEqual(["a", "b"]);
    expect(r.drop("b")).toBe(10);
    expect(r.unused("b")).toBe(0);
    r.replace("a", 0, BIG, 0, T0);
    expect(r.due(T0, true)).toEqual([]);
  });
});
