import { AggregatorRegistry, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { TallyHistogram } from "../../src/observability/tally-histogram.js";

const config = { name: "zpk_test_duration_seconds", help: "test", labelNames: ["method", "transport"] as const, buckets: [0.001, 0.01, 0.1, 1] };
const observations: [string, string, number][] = [
  ["Authenticate", "grpc", 0.0004],
  ["Authenticate", "grpc", 0.001],
  ["Authenticate", "grpc", 0.05],
  ["ListKeys", "rest", 0.2],
  ["ListKeys", "rest", 7],
  ["Authenticate", "connect", 0],
];

function both() {
  const theirs = new Registry();
  const ours = new Registry();
  const h = new Histogram({ ...config, registers: [theirs] });
  const t = new TallyHistogram({ ...config, registers: [ours] });
  for (const [method, transport, v] of observations) {
    h.observe({ method, transport }, v);
    t.observe(`${method} ${transport}`, () => ({ method, transport }), v);
  }
  return { theirs, ours };
}

describe("tally-histogram", () => {
  it("exports the same text and JSON as prom-client's Histogram fed the same observations", async () => {
    const { theirs, ours } = both();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
  });

  it("a cluster primary sums the workers' series as it sums prom-client's", async () => {
    const a = both();
    const b = both();
    const sum = async (regs: Registry[]) => (await AggregatorRegistry.aggregate(await Promise.all(regs.map((r) => r.getMetricsAsJSON()))).metrics());
    expect(await sum([a.ours, b.ours])).toBe(await sum([a.theirs, b.theirs]));
  });
});
