import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DigestSet } from "../../src/domain/digest-set.js";

const digest = (s: string) => createHash("sha256").update(s).digest("hex");

describe("DigestSet (the negative key cache)", () => {
  it("remembers what was added (a few set conflicts aside) and never claims what was not", () => {
    const set = new DigestSet(10_000, 60_000, () => 1_000);
    for (let i = 0; i < 5000; i++) set.add(digest(`unknown-${i}`));
    const kept = Array.from({ length: 5000 }, (_, i) => set.has(digest(`unknown-${i}`))).filter(Boolean).length;
    // half full: only digests whose set of 8 overflowed were evicted
    expect(kept).toBeGreaterThanOrEqual(4925);
    expect(set.size).toBe(kept);
    for (let i = 0; i < 50_000; i++) expect(set.has(digest(`never-added-${i}`))).toBe(false);
  });

  it("never holds more than its capacity, and a full set keeps the newest entries", () => {
    let t = 1;
    const set = new DigestSet(100, 60_000, () => t);
    for (let i = 0; i < 10_000; i++) {
      t++;
      set.add(digest(`flood-${i}`));
    }
    expect(set.size).toBeLessThanOrEqual(104); // the capacity, rounded up to whole sets of 8
    const recent = Array.from({ length: 20 }, (_, i) => set.has(digest(`flood-${9_999 - i}`))).filter(Boolean).length;
    const old = Array.from({ length: 1000 }, (_, i) => set.has(digest(`flood-${i}`))).filter(Boolean).length;
    expect(recent).toBeGreaterThanOrEqual(15); // FIFO within a set of 8: the last few are nearly all there
    expect(old).toBe(0);
  });

  it("forgets an entry after the TTL, and at once when deleted or cleared", () => {
    let t = 10_000;
    const set = new DigestSet(100, 500, () => t);
    const a = digest("a");
    const b = digest("b");
    set.add(a);
    set.add(b);
    set.delete(a);
    expect(set.has(a)).toBe(false);
    expect(set.has(b)).toBe(true);
    t += 499;
    expect(set.has(b)).toBe(true);
    t += 1;
    expect(set.has(b)).toBe(false);
    set.add(b);
    set.clear();
    expect(set.has(b)).toBe(false);
    expect(set.size).toBe(0);
  });
});
