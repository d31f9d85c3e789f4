import { describe, expect, it } from "vitest";
import { arrivalBursts } from "../../bench/lib/load.js";

describe("bench: open-loop arrivals grouped into bursts, and the tail they leave an ideal server", () => {
  // 100 bursts, 10 ms apart, of 10 requests 10 µs apart: h2load's rate mode at 1 000 req/s.
  const starts = Array.from({ length: 100 }, (_, b) => Array.from({ length: 10 }, (_, i) => 1_000_000 + b * 10_000 + i * 10)).flat();

  it("finds bursts of 10 requests every 10 ms, in any order of the log", () => {
    const shuffled = [...starts].reverse();
    expect(arrivalBursts(shuffled)).toEqual({ medianSize: 10, medianSpacingMs: 10 });
  });

  it("an ideal server at 2 000 req/s fed them has p99 near 5 ms: the last of each burst waits for the nine before it", () => {
    // Each request takes 0.5 ms; the k-th of a burst (k = 1..10) ends at k × 0.5 ms minus the 10 µs
    // steps it arrived after the first: 5 ms − 0.09 ms for the last.
    const b = arrivalBursts(starts, 2000)!;
    expect(b.idealP99Ms).toBeCloseTo(4.91, 2);
    // The same arrivals spread evenly (1 request every 1 ms) leave it the service time alone.
    const even = Array.from({ length: 1000 }, (_, i) => 1_000_000 + i * 1000);
    expect(arrivalBursts(even, 2000)!.idealP99Ms).toBeCloseTo(0.5, 5);
  });
});
