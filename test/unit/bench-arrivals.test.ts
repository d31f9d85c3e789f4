import { describe, expect, it } from "vitest";
import { arrivalBursts } from "../../bench/lib/h2load.js";

describe("bench: open-loop arrivals grouped into bursts", () => {
  // 100 bursts, 10 ms apart, of 10 requests 10 µs apart: h2load's rate mode at 1 000 req/s.
  const starts = Array.from({ length: 100 }, (_, b) => Array.from({ length: 10 }, (_, i) => 1_000_000 + b * 10_000 + i * 10)).flat();

  it("finds bursts of 10 requests every 10 ms, in any order of the log", () => {
    expect(arrivalBursts([...starts].reverse())).toEqual({ medianSize: 10, medianSpacingMs: 10 });
  });

  it("counts requests more than 0.5 ms apart as bursts of one", () => {
    const even = Array.from({ length: 1000 }, (_, i) => 1_000_000 + i * 1000);
    expect(arrivalBursts(even)).toEqual({ medianSize: 1, medianSpacingMs: 1 });
  });
});
