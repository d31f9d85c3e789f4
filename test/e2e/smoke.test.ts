import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allRpcClients, type RpcClient } from "../helpers/rpc-clients.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { type RunningServer, startServer } from "../helpers/server.js";

let server: RunningServer;
let clients: RpcClient[];
beforeAll(async () => {
  server = await startServer();
  clients = allRpcClients(server);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server.stop();
});

describe("smoke", () => {
  it("REST and every RPC transport see the same key", async () => {
    const customer = uuid();
    const key = await issueAsInternal(server, customer);
    const got = await rest(server, "GET", `/v1/api-keys/${key.id}`, { key: key.secret });
    expect(got.status).toBe(200);
    for (const c of clients) {
      const r = await c.call("getKey", { id: key.id }, { authorization: `Bearer ${key.secret}` });
      expect(r.ok, c.name).toBe(true);
      if (r.ok) expect(r.res.key?.prefix, c.name).toBe(key.prefix);
    }
  });
});
