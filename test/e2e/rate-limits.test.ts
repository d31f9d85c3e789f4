import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail, eventually, expectError } from "../helpers/rest-support.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/** Per-customer token bucket on /v1 (SPEC §3, §6): capacity 5, refill 0.5 token/s. */
let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ RATE_LIMIT_CAPACITY: "5", RATE_LIMIT_REFILL_PER_SEC: "0.5" });
});
afterAll(async () => {
  await server?.stop();
});

const list = (key: string) => rest(server, "GET", "/v1/api-keys", { key });

describe("rate limiting", () => {
  it("responses carry X-RateLimit-Limit and a decreasing X-RateLimit-Remaining; the 6th rapid request is 429 with Retry-After", async () => {
    const customerId = uuid();
    const k = await issueAsInternal(server, customerId);
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await list(k.secret);
      expect(res.status, `request ${i + 1}: ${JSON.stringify(res.body)}`).toBe(200);
      expect(res.headers.get("x-ratelimit-limit")).toBe("5");
      remaining.push(Number(res.headers.get("x-ratelimit-remaining")));
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);

    const refused = await list(k.secret);
    expectError(refused, 429, "rate_limited");
    const retryAfter = refused.headers.get("retry-after");
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(2); // one token at 0.5/s
    expect(refused.headers.get("x-ratelimit-limit")).toBe("5");
    expect(refused.headers.get("x-ratelimit-remaining")).toBe("0");
  });

  it("buckets are per customer: another customer's key is still allowed, with its own full bucket", async () => {
    const a = await issueAsInternal(server, uuid());
    const b = await issueAsInternal(server, uuid());
    for (let i = 0; i < 5; i++) await list(a.secret);
    expect((await list(a.secret)).status).toBe(429);
    const other = await list(b.secret);
    expect(other.status).toBe(200);
    expect(other.headers.get("x-ratelimit-remaining")).toBe("4");
  });

  it("all keys of one customer share one bucket", async () => {
    const customerId = uuid();
    const k1 = await issueAsInternal(server, customerId, { name: "k1" });
    const k2 = await issueAsInternal(server, customerId, { name: "k2" });
    for (let i = 0; i < 3; i++) expect((await list(k1.secret)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await list(k2.secret)).status).toBe(200);
    expectError(await list(k2.secret), 429, "rate_limited");
    expectError(await list(k1.secret), 429, "rate_limited");
  });

  it("every authenticated route is charged, including writes and the audit route", async () => {
    const customerId = uuid();
    const k = await issueAsInternal(server, customerId);
    const r1 = await rest(server, "POST", "/v1/api-keys", { key: k.secret, body: { name: "a" } });
    const r2 = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: k.secret });
    const r3 = await rest(server, "PATCH", `/v1/api-keys/${r1.body.id}`, { key: k.secret, body: { name: "b" } });
    const r4 = await rest(server, "GET", "/v1/audit-events", { key: k.secret });
    const r5 = await rest(server, "DELETE", `/v1/api-keys/${r1.body.id}`, { key: k.secret });
    expect([r1, r2, r3, r4, r5].map((r) => r.status)).toEqual([201, 200, 200, 200, 204]);
    expect([r1, r2, r3, r4, r5].map((r) => r.headers.get("x-ratelimit-remaining"))).toEqual(["4", "3", "2", "1", "0"]);
    expectError(await rest(server, "POST", "/v1/api-keys", { key: k.secret, body: { name: "c" } }), 429, "rate_limited");
  });

  it("refused requests take no token: after repeated 429s, waiting Retry-After seconds is enough to be admitted", async () => {
    const k = await issueAsInternal(server, uuid());
    for (let i = 0; i < 5; i++) await list(k.secret);
    let last;
    for (let i = 0; i < 5; i++) {
      last = await list(k.secret);
      expect(last.status).toBe(429);
    }
    const wait = Number(last!.headers.get("retry-after"));
    await sleep(wait * 1000 + 100);
    const again = await list(k.secret);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.headers.get("x-ratelimit-remaining")).toBe("0");
    expect((await list(k.secret)).status).toBe(429);
  });

  it("a refused request is recorded as rate_limit.exceeded in the customer's trail", async () => {
    const customerId = uuid();
    const k = await issueAsInternal(server, customerId);
    for (let i = 0; i < 5; i++) await list(k.secret);
    expect((await list(k.secret)).status).toBe(429);
    expect((await list(k.secret)).status).toBe(429);
    const events = await eventually(async () => {
      const trail = await auditTrail(server, customerId, "action=rate_limit.exceeded");
      // The two refusals may be flushed in two writes: wait for both, then check nothing more came.
      return countOf(trail) >= 2 ? trail : null;
    }, 3000);
    expect(events, "fewer than 2 rate_limit.exceeded counted").toBeTruthy();
    expect(countOf(events!)).toBe(2);
    expect(events![0].customer_id).toBe(customerId);
  });

  it("unauthenticated requests do not drain a customer's bucket", async () => {
    const k = await issueAsInternal(server, uuid());
    for (let i = 0; i < 10; i++) expect((await rest(server, "GET", "/v1/api-keys", { key: "zpk_live_garbage" })).status).toBe(401);
    const res = await list(k.secret);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-ratelimit-remaining")).toBe("4");
  });
});

/** Refusals an audit trail records: aggregated events carry a count. */
function countOf(events: any[]): number {
  return events.reduce((n: number, e: any) => n + (e.count ?? 1), 0);
}
