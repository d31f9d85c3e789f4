import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { type RunningServer, startServer } from "../helpers/server.js";

/** Issue 4: internal RPCs without a configured INTERNAL_TOKEN, and SetRateLimit's audit trail. */
describe("internal credential", () => {
  let bare: RunningServer;
  let client: RpcClient;
  beforeAll(async () => {
    bare = await startServer({ INTERNAL_TOKEN: "" });
    client = grpcJsClient(`127.0.0.1:${bare.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await bare.stop();
  });

  it("with no INTERNAL_TOKEN configured, internal RPCs are refused with a message saying how to enable them", async () => {
    for (const token of ["anything-at-all-0123456789", ""]) {
      const r = await client.call("authenticate", { key: "zpk_live_x" }, token ? { authorization: `Bearer ${token}` } : {});
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe(16);
        expect(r.message).toContain("INTERNAL_TOKEN");
      }
    }
  });

  it("with no INTERNAL_TOKEN, a would-be internal token on /v1 is just an invalid key (401)", async () => {
    const res = await rest(bare, "GET", "/v1/api-keys", { key: "anything-at-all-0123456789" });
    expect(res.status).toBe(401);
  });
});

describe("SetRateLimit", () => {
  let server: RunningServer;
  let client: RpcClient;
  beforeAll(async () => {
    server = await startServer();
    client = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await server.stop();
  });

  it("raises one customer's bucket, is audited as rate_limit.updated with the internal caller's name, and /v1 headers show it", async () => {
    const customer = uuid();
    const key = await issueAsInternal(server, customer);
    const auth = { authorization: `Bearer ${server.internalToken}`, "x-caller": "billing" };
    const set = await client.call("setRateLimit", { customerId: customer, capacity: 500, refillPerSecond: 5 }, auth);
    expect(set.ok && set.res.capacity).toBe(500);
    const res = await rest(server, "GET", "/v1/api-keys", { key: key.secret });
    expect(res.headers.get("x-ratelimit-limit")).toBe("500");
    await new Promise((r) => setTimeout(r, 300));
    const trail = await rest(server, "GET", "/v1/audit-events?action=rate_limit.updated", { key: key.secret });
    expect(trail.body.data).toHaveLength(1);
    expect(trail.body.data[0].actor).toMatchObject({ type: "internal", name: "billing" });
    const bad = await client.call("setRateLimit", { customerId: customer, capacity: 0, refillPerSecond: 1 }, auth);
    expect(bad.ok || bad.code).toBe(3);
  });
});
