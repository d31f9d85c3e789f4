import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail, EVENT_ID_PATTERN, eventually, ISO_UTC, issueWith, wellFormedUnknownKey } from "../helpers/rest-support.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/** The audit trail over REST (SPEC §7): what is written, when, for whom, and that no secret is. */
let server: RunningServer;
/** Every secret issued in this file; none may ever be seen again. */
const secrets: string[] = [];
const EVENT_FIELDS = ["action", "actor", "count", "customer_id", "id", "ip", "outcome", "reason", "related_key_id", "request_id", "target", "time", "user_agent"];

beforeAll(async () => {
  // The server's default flush interval, so "readable within 1 s" is tested as configured in production.
  server = await startServer({ AUDIT_FLUSH_INTERVAL_MS: "250" });
});
afterAll(async () => {
  await server?.stop();
});

async function customer() {
  const customerId = uuid();
  const root = await issueAsInternal(server, customerId, { name: "root" });
  secrets.push(root.secret);
  return { customerId, root };
}
async function issue(key: string, fields: Record<string, unknown> = {}) {
  const k = await issueWith(server, key, fields);
  secrets.push(k.secret);
  return k;
}

describe("audit events", () => {
  it("issue, update and revoke each write one event naming actor, target (id, prefix, name), time and the request id", async () => {
    const { customerId, root } = await customer();
    const t0 = Date.now();
    const issued = await rest(server, "POST", "/v1/api-keys", { key: root.secret, body: { name: "first-name" } });
    expect(issued.status).toBe(201);
    secrets.push(issued.body.secret);
    const k = issued.body;
    const updated = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { name: "second-name" } });
    expect(updated.status).toBe(200);
    const revoked = await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(revoked.status).toBe(204);

    const res = await rest(server, "GET", `/v1/audit-events?target_id=${k.id}`, { key: root.secret });
    expect(res.status).toBe(200);
    const events = res.body.data;
    expect(events.map((e: any) => e.action)).toEqual(["api_key.revoked", "api_key.updated", "api_key.issued"]);
    const requestIds = [revoked, updated, issued].map((r) => r.headers.get("x-request-id"));
    const names = ["second-name", "second-name", "first-name"];
    events.forEach((e: any, i: number) => {
      expect(Object.keys(e).sort()).toEqual(EVENT_FIELDS);
      expect(e.id).toMatch(EVENT_ID_PATTERN);
      expect(e.customer_id).toBe(customerId);
      expect(e.outcome).toBe("success");
      expect(e.actor.type).toBe("key");
      expect(e.actor.key_id).toBe(root.id);
      expect(e.actor.prefix).toBe(root.prefix);
      expect(e.target.key_id).toBe(k.id);
      expect(e.target.prefix).toBe(k.prefix);
      expect(e.target.name).toBe(names[i]);
      expect(e.time).toMatch(ISO_UTC);
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(t0 - 1000);
      expect(Date.parse(e.time)).toBeLessThanOrEqual(Date.now() + 1000);
      expect(e.request_id).toBe(requestIds[i]);
      expect(e.ip).toBeTruthy();
    });
  });

  it("a key issued by the internal credential names the internal caller as actor", async () => {
    const customerId = uuid();
    const res = await rest(server, "POST", "/v1/api-keys", {
      key: server.internalToken,
      headers: { "x-caller": "signup-service" },
      body: { name: "first", customer_id: customerId },
    });
    expect(res.status).toBe(201);
    secrets.push(res.body.secret);
    const [e] = await auditTrail(server, customerId, `target_id=${res.body.id}`);
    expect(e.action).toBe("api_key.issued");
    expect(e.actor.type).toBe("internal");
    expect(e.actor.name).toBe("signup-service");
    expect(e.actor.key_id ?? null).toBeNull();
  });

  it("a client-supplied X-Request-Id is echoed and recorded on the event", async () => {
    const { root } = await customer();
    const requestId = `client-req-${Date.now()}`;
    const res = await rest(server, "POST", "/v1/api-keys", { key: root.secret, body: { name: "traced" }, headers: { "x-request-id": requestId } });
    expect(res.status).toBe(201);
    secrets.push(res.body.secret);
    expect(res.headers.get("x-request-id")).toBe(requestId);
    const events = await rest(server, "GET", `/v1/audit-events?target_id=${res.body.id}`, { key: root.secret });
    expect(events.body.data[0].request_id).toBe(requestId);
  });

  it("the event keeps the name the key had at the time, after later renames", async () => {
    const { root } = await customer();
    const k = await issue(root.secret, { name: "old" });
    await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { name: "new" } });
    const res = await rest(server, "GET", `/v1/audit-events?target_id=${k.id}&action=api_key.issued`, { key: root.secret });
    expect(res.body.data[0].target.name).toBe("old");
  });

  it("a dashboard sign-in with a revoked key is audited under a req_ id of ours when its x-request-id is key-shaped, never under the key", async () => {
    const { root } = await customer();
    const k = await issue(root.secret, { name: "doomed-dashboard" });
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    const attempt = await fetch(`${server.url}/dashboard/api/sign-in`, {
      method: "POST",
      headers: { origin: server.url, "content-type": "application/json", "x-request-id": root.secret },
      body: JSON.stringify({ key: k.secret }),
    });
    expect(attempt.status).toBe(401);
    await attempt.arrayBuffer();
    const events = await eventually(async () => {
      const res = await rest(server, "GET", "/v1/audit-events?action=auth.failed", { key: root.secret });
      return res.body.data.length > 0 ? res.body.data : null;
    }, 1000);
    expect(events, "no auth.failed for the dashboard sign-in").toBeTruthy();
    expect(events[0].target.key_id).toBe(k.id);
    expect(events[0].request_id).toMatch(/^req_/);
    expect(JSON.stringify(events)).not.toContain(root.secret);
  });

  it("using a revoked key appears as auth.failed in that customer's trail within 1 s", async () => {
    const { customerId, root } = await customer();
    const k = await issue(root.secret, { name: "doomed" });
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    const attempt = await rest(server, "GET", "/v1/api-keys", { key: k.secret, headers: { "user-agent": "probe/1.0" } });
    expect(attempt.status).toBe(401);
    const started = Date.now();
    const events = await eventually(async () => {
      const res = await rest(server, "GET", "/v1/audit-events?action=auth.failed", { key: root.secret });
      return res.body.data.length > 0 ? res.body.data : null;
    }, 1000);
    expect(events, `no auth.failed after ${Date.now() - started} ms`).toBeTruthy();
    expect(events).toHaveLength(1);
    const e = events[0];
    expect(e.customer_id).toBe(customerId);
    expect(e.outcome).toBe("failure");
    expect(e.reason).toMatch(/revoked/);
    expect(e.target.key_id).toBe(k.id);
    expect(e.target.prefix).toBe(k.prefix);
    expect(e.target.name).toBe("doomed");
    expect(e.request_id).toBe(attempt.headers.get("x-request-id"));
    expect(e.user_agent).toBe("probe/1.0");
  });

  it("using an expired key appears as auth.failed with reason expired", async () => {
    const { root } = await customer();
    const t0 = Date.now();
    const k = await issue(root.secret, { name: "short", expires_at: new Date(t0 + 1000).toISOString() });
    await sleep(Math.max(0, t0 + 1150 - Date.now()));
    expect((await rest(server, "GET", "/v1/api-keys", { key: k.secret })).status).toBe(401);
    const events = await eventually(async () => {
      const res = await rest(server, "GET", `/v1/audit-events?action=auth.failed&target_id=${k.id}`, { key: root.secret });
      return res.body.data.length > 0 ? res.body.data : null;
    }, 1000);
    expect(events?.[0]?.reason).toMatch(/expired/);
  });

  it("a failure with an unknown key is not written into any customer's trail", async () => {
    const { root } = await customer();
    expect((await rest(server, "GET", "/v1/api-keys", { key: wellFormedUnknownKey() })).status).toBe(401);
    await sleep(500);
    const res = await rest(server, "GET", "/v1/audit-events?action=auth.failed", { key: root.secret });
    expect(res.body.data).toEqual([]);
  });

  it("audit events are append-only: revoking a key does not change its earlier events", async () => {
    const { root } = await customer();
    const k = await issue(root.secret, { name: "x" });
    const before = (await rest(server, "GET", `/v1/audit-events?target_id=${k.id}`, { key: root.secret })).body.data;
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    const after = (await rest(server, "GET", `/v1/audit-events?target_id=${k.id}`, { key: root.secret })).body.data;
    expect(after.slice(1)).toEqual(before);
  });
});

describe("secrets are shown once", () => {
  it("no list, GET, or audit response, nor the server's logs, ever contains an issued secret", async () => {
    // a little of everything, so there is plenty to search
    const { customerId, root } = await customer();
    const issued = [];
    for (let i = 0; i < 4; i++) issued.push(await issue(root.secret, { name: `k${i}`, metadata: { i: String(i) } }));
    const [k0, k1, k2, k3] = [issued[0]!, issued[1]!, issued[2]!, issued[3]!];
    await rest(server, "PATCH", `/v1/api-keys/${k0.id}`, { key: root.secret, body: { name: "renamed" } });
    await rest(server, "DELETE", `/v1/api-keys/${k1.id}`, { key: root.secret });
    await rest(server, "GET", "/v1/api-keys", { key: k1.secret }); // auth.failed with a known key
    await rest(server, "GET", "/v1/api-keys", { key: k2.secret.slice(0, -1) + "x" }); // malformed
    await rest(server, "GET", `/v1/api-keys?api_key=${k3.secret}`); // key in URL
    await sleep(600);

    const bodies: string[] = [];
    const collect = async (path: string, key: string) => {
      const res = await rest(server, "GET", path, { key });
      expect(res.status, path).toBe(200);
      bodies.push(JSON.stringify(res.body));
    };
    await collect("/v1/api-keys?include_inactive=true&page_size=100", root.secret);
    for (const k of [root, ...issued]) await collect(`/v1/api-keys/${k.id}`, root.secret);
    await collect("/v1/audit-events?page_size=100", root.secret);
    await collect("/v1/audit-events?page_size=100", server.internalToken); // every customer's events
    bodies.push(JSON.stringify(await auditTrail(server, customerId)));
    const everything = bodies.join("\n");
    expect(everything).toContain(k0.prefix); // the search does see the keys' data

    const logs = server.output();
    expect(logs.length).toBeGreaterThan(0);
    expect(secrets.length).toBeGreaterThan(10);
    for (const s of secrets) {
      const randomPart = s.slice("zpk_live_".length, -6);
      expect(everything, "a response holds a secret").not.toContain(s);
      expect(everything, "a response holds a secret's random part").not.toContain(randomPart);
      expect(logs, "the logs hold a secret").not.toContain(s);
      expect(logs, "the logs hold a secret's random part").not.toContain(randomPart);
    }
  });
});
