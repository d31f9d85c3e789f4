import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * GetUsage (GET /v1/usage): the hourly counts behind the dashboard's chart, for API users, under
 * the same visibility rules as ListKeys.
 */
let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

const authenticate = (key: string, extra: Record<string, unknown> = {}) =>
  fetch(`${server.url}/apikeys.v1.ApiKeyService/Authenticate`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.internalToken}`, "content-type": "application/json" },
    body: JSON.stringify({ key, ...extra }),
  });

const totals = (body: any) => {
  const out: Record<string, number> = { valid: 0 };
  for (const b of body.buckets) {
    out.valid! += Number(b.valid);
    for (const d of b.denied) out[d.reason] = (out[d.reason] ?? 0) + Number(d.count);
  }
  return out;
};

describe("GetUsage", () => {
  it("counts valid and denied authentications per hour, per key and for the customer; internal callers name the customer", async () => {
    const customer = uuid();
    const instance = uuid();
    const owner = await issueAsInternal(server, customer, { name: "owner" });
    const a = await issueAsInternal(server, customer, { name: "a", scopes: ["x:read"] });
    const bound = await issueAsInternal(server, customer, { name: "bound", instance_id: instance, scopes: ["api_keys:read"] });
    for (let i = 0; i < 4; i++) await authenticate(a.secret);
    await authenticate(a.secret, { required_scopes: ["x:write"] });
    await authenticate(bound.secret, { instance_id: uuid() });
    await sleep(400); // written behind every USAGE_FLUSH_INTERVAL_MS (100 ms here)

    const one = await rest(server, "GET", `/v1/usage?key_id=${a.id}`, { key: owner.secret });
    expect(one.status).toBe(200);
    expect(one.body.bucket_seconds).toBe(3600);
    expect(totals(one.body)).toEqual({ valid: 4, DENIAL_REASON_MISSING_SCOPE: 1 });
    const start = new Date(one.body.buckets[0].start).getTime();
    expect(start % 3_600_000).toBe(0);
    expect(Date.parse(one.body.until) - Date.parse(one.body.since)).toBeLessThanOrEqual(7 * 24 * 3_600_000 + 3_600_000);

    await sleep(400);
    const all = await rest(server, "GET", "/v1/usage", { key: owner.secret });
    // The owner's own calls are authentications too (its first /v1/usage call is written by now).
    expect(totals(all.body).valid).toBeGreaterThanOrEqual(5);
    expect(totals(all.body).DENIAL_REASON_WRONG_INSTANCE).toBe(1);

    const internal = await fetch(`${server.url}/apikeys.v1.ApiKeyService/GetUsage`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.internalToken}`, "content-type": "application/json" },
      body: JSON.stringify({ customer_id: customer, key_id: a.id }),
    });
    expect(totals(await internal.json())).toEqual({ valid: 4, DENIAL_REASON_MISSING_SCOPE: 1 });

    // An instance-bound key sees only its instance's keys; another key is not found.
    const mine = await rest(server, "GET", "/v1/usage", { key: bound.secret });
    expect(mine.status).toBe(200);
    expect(totals(mine.body).DENIAL_REASON_WRONG_INSTANCE).toBe(1);
    expect(totals(mine.body).DENIAL_REASON_MISSING_SCOPE).toBeUndefined();
    expect((await rest(server, "GET", `/v1/usage?key_id=${a.id}`, { key: bound.secret })).status).toBe(404);
  });

  it("needs api_keys:read, hides other customers' keys, and refuses a bad window", async () => {
    const c = uuid();
    const reader = await issueAsInternal(server, c, { name: "no read", scopes: ["audit:read"] });
    const other = await issueAsInternal(server, uuid(), { name: "other" });
    const owner = await issueAsInternal(server, c, { name: "owner" });
    expect((await rest(server, "GET", "/v1/usage", { key: reader.secret })).status).toBe(403);
    expect((await rest(server, "GET", `/v1/usage?key_id=${other.id}`, { key: owner.secret })).status).toBe(404);
    const bad = await rest(server, "GET", "/v1/usage?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", { key: owner.secret });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_argument");
  });
});
