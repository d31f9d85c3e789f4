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
