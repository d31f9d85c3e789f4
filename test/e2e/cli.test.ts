import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rest, uuid } from "../helpers/rest.js";
import { auditTrail, expectError, KEY_FIELDS, SECRET_PATTERN } from "../helpers/rest-support.js";
import { type RunningServer, startServer } from "../helpers/server.js";
import { keysCli as runKeysCli } from "../helpers/run-process.js";

/** SPEC §9: `npm run keys -- issue …` prints the first key for a customer, usable at once. */
let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

const keysCli = (args: string[]) => runKeysCli(args, { DATA_DIR: server.dataDir }, 25_000);

// Each case is its own CLI process (npm + tsx start-up dominates); run them side by side.
describe.concurrent("keys CLI", () => {
  it("issue prints only the key object with its secret as JSON on stdout, and the key works on the running server at once", async () => {
    const customerId = uuid();
    const r = await keysCli(["issue", "--customer", customerId, "--name", "first-key", "--scopes", "api_keys:read"]);
    expect(r.code, r.stderr).toBe(0);
    let key: any;
    expect(() => (key = JSON.parse(r.stdout)), `stdout is not one JSON document:\n${r.stdout}`).not.toThrow();
    expect(Object.keys(key).sort()).toEqual([...KEY_FIELDS, "secret"].sort());
    expect(key.customer_id).toBe(customerId);
    expect(key.name).toBe("first-key");
    expect(key.scopes).toEqual(["api_keys:read"]);
    expect(key.secret).toMatch(SECRET_PATTERN);
    expect(key.prefix).toBe(key.secret.slice(0, 17));
    expect(r.stderr).not.toContain(key.secret);

    const list = await rest(server, "GET", "/v1/api-keys", { key: key.secret });
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    expect(list.body.data.map((k: any) => k.id)).toEqual([key.id]);
    // the scopes given on the command line hold
    expectError(await rest(server, "POST", "/v1/api-keys", { key: key.secret, body: { name: "x" } }), 403, "permission_denied");

    const trail = await auditTrail(server, customerId);
    expect(trail.map((e) => e.action)).toEqual(["api_key.issued"]);
    expect(trail[0].actor.type).toBe("internal");
    expect(JSON.stringify(trail)).not.toContain(key.secret);
  });

  it("issue with --instance and --expires-at binds the key and sets its expiry", async () => {
    const customerId = uuid();
    const instance = uuid();
    const expires = new Date(Date.now() + 86_400_000).toISOString();
    const r = await keysCli(["issue", "--customer", customerId, "--name", "bound", "--instance", instance, "--expires-at", expires]);
    expect(r.code, r.stderr).toBe(0);
    const key = JSON.parse(r.stdout);
    expect(key.instance_id).toBe(instance);
    expect(Date.parse(key.expires_at)).toBe(Date.parse(expires));
    const got = await rest(server, "GET", `/v1/api-keys/${key.id}`, { key: key.secret });
    expect(got.status).toBe(200);
    expect(got.body.instance_id).toBe(instance);
  });

  it("a bad --customer exits non-zero with a message on stderr and nothing on stdout", async () => {
    const r = await keysCli(["issue", "--customer", "not-a-uuid", "--name", "x"]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/customer/i);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("missing --name exits non-zero with usage on stderr and nothing on stdout", async () => {
    const r = await keysCli(["issue", "--customer", uuid()]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/--name/);
  });
});
