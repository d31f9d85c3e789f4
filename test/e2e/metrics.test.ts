import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { metricValue as value, scrapeMetrics } from "../helpers/metrics.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { type RunningServer, startServer } from "../helpers/server.js";

/** Issue 7, observability: what an operator scrapes and alerts on. */
let server: RunningServer;
let grpc: RpcClient;
beforeAll(async () => {
  server = await startServer();
  grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
});
afterAll(async () => {
  grpc.close();
  await server.stop();
});

const scrape = (s: RunningServer) => scrapeMetrics(s.metricsPort);

describe("Prometheus /metrics on METRICS_PORT", () => {
  it("counts requests by route and status, auth outcomes by reason, rate-limit decisions and cache hits", async () => {
    const key = await issueAsInternal(server, uuid());
    for (let i = 0; i < 3; i++) expect((await rest(server, "GET", "/v1/api-keys", { key: key.secret })).status).toBe(200);
    const auth = { authorization: `Bearer ${server.internalToken}` };
    await grpc.call("authenticate", { key: key.secret, charge: 1 }, auth);
    await grpc.call("authenticate", { key: "zpk_live_garbage" }, auth);

    const text = await scrape(server);
    expect(value(text, 'zpk_requests_total{method="ListKeys",transport="rest",code="ok"}')).toBe(3);
    expect(value(text, 'zpk_requests_total{method="IssueKey",transport="rest",code="ok"}')).toBe(1);
    expect(value(text, 'zpk_requests_total{method="Authenticate",transport="grpc",code="ok"}')).toBe(2);
    expect(value(text, 'zpk_auth_outcomes_total{outcome="valid"}')).toBe(4);
    expect(value(text, 'zpk_auth_outcomes_total{outcome="malformed"}')).toBe(1);
    expect(value(text, 'zpk_rate_limit_decisions_total{result="allowed"}')).toBe(4);
    expect(value(text, 'zpk_key_cache_lookups{result="hit"}')).toBeGreaterThanOrEqual(3);
    expect(text).toContain("zpk_request_duration_seconds_bucket");
    expect(text).toContain('zpk_store_operation_duration_seconds_count{op="insertKey"}');
    expect(text).toContain("zpk_usage_write_behind_depth");
    expect(text).not.toContain(key.secret);
  });

  it("is not served on the public PORT", async () => {
    const res = await rest(server, "GET", "/metrics");
    expect(res.status).toBe(404);
  });
});
