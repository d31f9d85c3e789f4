import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail, expectError, issueWith } from "../helpers/rest-support.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/** Who may see and do what over /v1: tenancy, instance binding, scopes (SPEC §2, §3). */
let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

const ids = (res: { body: { data: { id: string }[] } }) => res.body.data.map((k) => k.id);

describe("tenancy: customer B cannot see or touch customer A's keys", () => {
  let a: { customerId: string; root: any; other: any };
  let b: { customerId: string; root: any };
  beforeAll(async () => {
    const ca = uuid();
    const aRoot = await issueAsInternal(server, ca, { name: "a-root" });
    const aOther = await issueWith(server, aRoot.secret, { name: "a-other", metadata: { owner: "a" } });
    a = { customerId: ca, root: aRoot, other: aOther };
    const cb = uuid();
    b = { customerId: cb, root: await issueAsInternal(server, cb, { name: "b-root" }) };
  });

  it("B's GET of A's key is 404 not_found, exactly as for a key that does not exist", async () => {
    const theirs = await rest(server, "GET", `/v1/api-keys/${a.other.id}`, { key: b.root.secret });
    expectError(theirs, 404, "not_found");
    const missing = await rest(server, "GET", "/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", { key: b.root.secret });
    expectError(missing, 404, "not_found");
    expect(theirs.body.error.message).toBe(missing.body.error.message);
  });

  it("B's PATCH of A's key is 404 and A's key is unchanged", async () => {
    const res = await rest(server, "PATCH", `/v1/api-keys/${a.other.id}`, {
      key: b.root.secret,
      body: { name: "pwned", metadata: { owner: "b" } },
    });
    expectError(res, 404, "not_found");
    const got = await rest(server, "GET", `/v1/api-keys/${a.other.id}`, { key: a.root.secret });
    expect(got.body.name).toBe("a-other");
    expect(got.body.metadata).toEqual({ owner: "a" });
  });

  it("B's DELETE of A's key is 404 and A's key keeps working", async () => {
    expectError(await rest(server, "DELETE", `/v1/api-keys/${a.other.id}`, { key: b.root.secret }), 404, "not_found");
    const got = await rest(server, "GET", `/v1/api-keys/${a.other.id}`, { key: a.root.secret });
    expect(got.body.revoked_at).toBeNull();
    expect(got.body.is_active).toBe(true);
    expect((await rest(server, "GET", "/v1/api-keys", { key: a.other.secret })).status).toBe(200);
  });

  it("B's list never includes A's keys (nor with include_inactive or an instance filter)", async () => {
    for (const q of ["", "?include_inactive=true", "?page_size=100&include_inactive=true"]) {
      const res = await rest(server, "GET", `/v1/api-keys${q}`, { key: b.root.secret });
      expect(res.status).toBe(200);
      expect(ids(res)).toEqual([b.root.id]);
      expect(JSON.stringify(res.body)).not.toContain(a.customerId);
    }
  });

  it("B cannot act for A by naming A's customer_id", async () => {
    const before = ids(await rest(server, "GET", "/v1/api-keys?include_inactive=true", { key: a.root.secret }));
    const issue = await rest(server, "POST", "/v1/api-keys", { key: b.root.secret, body: { name: "x", customer_id: a.customerId } });
    expect([400, 403, 404]).toContain(issue.status);
    expectError(issue, issue.status, ["invalid_argument", "permission_denied", "not_found"]);
    const list = await rest(server, "GET", `/v1/api-keys?customer_id=${a.customerId}`, { key: b.root.secret });
    expect([400, 403, 404]).toContain(list.status);
    const get = await rest(server, "GET", `/v1/api-keys/${a.other.id}?customer_id=${a.customerId}`, { key: b.root.secret });
    expect([400, 403, 404]).toContain(get.status);
    expect(JSON.stringify(get.body)).not.toContain("a-other");
    const audit = await rest(server, "GET", `/v1/audit-events?customer_id=${a.customerId}`, { key: b.root.secret });
    expect([400, 403, 404]).toContain(audit.status);
    expect(JSON.stringify(audit.body)).not.toContain(a.other.id);
    const after = ids(await rest(server, "GET", "/v1/api-keys?include_inactive=true", { key: a.root.secret }));
    expect(after).toEqual(before);
  });

  it("B's audit trail shows none of A's events, even filtered by A's key id", async () => {
    await rest(server, "PATCH", `/v1/api-keys/${a.other.id}`, { key: a.root.secret, body: { name: "a-other" } });
    const all = await rest(server, "GET", "/v1/audit-events?page_size=100", { key: b.root.secret });
    expect(all.status).toBe(200);
    expect(all.body.data.length).toBeGreaterThan(0); // B's own issue event
    for (const e of all.body.data) expect(e.customer_id).toBe(b.customerId);
    const text = JSON.stringify(all.body);
    for (const s of [a.customerId, a.root.id, a.other.id, a.root.prefix, a.other.prefix]) expect(text).not.toContain(s);
    const filtered = await rest(server, "GET", `/v1/audit-events?target_id=${a.other.id}`, { key: b.root.secret });
    expect(filtered.status).toBe(200);
    expect(filtered.body.data).toEqual([]);
  });

  it("B's failed attempts on A's keys are not written into A's trail as A's actions", async () => {
    await rest(server, "DELETE", `/v1/api-keys/${a.other.id}`, { key: b.root.secret });
    await sleep(300);
    const trail = await auditTrail(server, a.customerId);
    for (const e of trail) expect(e.actor.key_id ?? null).not.toBe(b.root.id);
    expect(trail.filter((e) => e.action === "api_key.revoked")).toEqual([]);
  });
});

describe("instance-bound callers", () => {
  const X = uuid();
  const Y = uuid();
  let customerId: string;
  let root: any, boundX: any, boundX2: any, boundY: any, unbound: any;
  beforeAll(async () => {
    customerId = uuid();
    root = await issueAsInternal(server, customerId, { name: "root" });
    boundX = await issueWith(server, root.secret, { name: "x1", instance_id: X });
    boundX2 = await issueWith(server, root.secret, { name: "x2", instance_id: X });
    boundY = await issueWith(server, root.secret, { name: "y1", instance_id: Y });
    unbound = await issueWith(server, root.secret, { name: "free" });
  });

  it("the issued key shows its instance_id", () => {
    expect(boundX.instance_id).toBe(X);
    expect(boundY.instance_id).toBe(Y);
    expect(unbound.instance_id).toBeNull();
  });

  it("lists only the keys bound to its own instance", async () => {
    const res = await rest(server, "GET", "/v1/api-keys?include_inactive=true", { key: boundX.secret });
    expect(res.status).toBe(200);
    expect(ids(res).sort()).toEqual([boundX.id, boundX2.id].sort());
    expect(res.body.data.every((k: any) => k.instance_id === X)).toBe(true);
  });

  it("filtering its list by another instance returns nothing", async () => {
    const res = await rest(server, "GET", `/v1/api-keys?instance_id=${Y}`, { key: boundX.secret });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual([]);
  });

  it("gets 404 for an unbound key and a key of another instance, 200 for its own instance's", async () => {
    expectError(await rest(server, "GET", `/v1/api-keys/${unbound.id}`, { key: boundX.secret }), 404, "not_found");
    expectError(await rest(server, "GET", `/v1/api-keys/${boundY.id}`, { key: boundX.secret }), 404, "not_found");
    expectError(await rest(server, "GET", `/v1/api-keys/${root.id}`, { key: boundX.secret }), 404, "not_found");
    expect((await rest(server, "GET", `/v1/api-keys/${boundX2.id}`, { key: boundX.secret })).status).toBe(200);
  });

  it("cannot PATCH or DELETE keys outside its instance (404), and they stay untouched", async () => {
    for (const target of [unbound, boundY]) {
      expectError(
        await rest(server, "PATCH", `/v1/api-keys/${target.id}`, { key: boundX.secret, body: { name: "hijack" } }),
        404,
        "not_found",
      );
      expectError(await rest(server, "DELETE", `/v1/api-keys/${target.id}`, { key: boundX.secret }), 404, "not_found");
      const got = await rest(server, "GET", `/v1/api-keys/${target.id}`, { key: root.secret });
      expect(got.body.name).toBe(target.name);
      expect(got.body.is_active).toBe(true);
    }
  });

  it("issuing without instance_id is 403 and the message says to pass instance_id", async () => {
    const res = await rest(server, "POST", "/v1/api-keys", { key: boundX.secret, body: { name: "unbound-child" } });
    expectError(res, 403, "permission_denied", "instance_id");
  });

  it("issuing for another instance is 403", async () => {
    const res = await rest(server, "POST", "/v1/api-keys", { key: boundX.secret, body: { name: "y-child", instance_id: Y } });
    expectError(res, 403, "permission_denied");
  });

  it("issuing for its own instance works and the child is bound to it", async () => {
    const child = await issueWith(server, boundX.secret, { name: "x-child", instance_id: X });
    expect(child.instance_id).toBe(X);
    const res = await rest(server, "GET", `/v1/api-keys/${child.id}`, { key: boundX2.secret });
    expect(res.status).toBe(200);
  });

  it("refused issuances created no keys", async () => {
    const res = await rest(server, "GET", "/v1/api-keys?include_inactive=true&page_size=100", { key: root.secret });
    const names = res.body.data.map((k: any) => k.name);
    expect(names).not.toContain("unbound-child");
    expect(names).not.toContain("y-child");
  });
});

describe("scopes: no privilege escalation through issuance", () => {
  let customerId: string;
  let root: any, writer: any, reader: any, auditor: any;
  beforeAll(async () => {
    customerId = uuid();
    root = await issueAsInternal(server, customerId, { name: "root" });
    writer = await issueWith(server, root.secret, { name: "writer", scopes: ["api_keys:write", "api_keys:read"] });
    reader = await issueWith(server, root.secret, { name: "reader", scopes: ["api_keys:read"] });
    auditor = await issueWith(server, root.secret, { name: "auditor", scopes: ["audit:read"] });
  });

  it("a read+write key can issue a read-only key", async () => {
    const child = await issueWith(server, writer.secret, { name: "ro-child", scopes: ["api_keys:read"] });
    expect(child.scopes).toEqual(["api_keys:read"]);
    expect((await rest(server, "GET", "/v1/api-keys", { key: child.secret })).status).toBe(200);
    expectError(await rest(server, "POST", "/v1/api-keys", { key: child.secret, body: { name: "z", scopes: ["api_keys:read"] } }), 403, "permission_denied");
  });

  it("a read+write key can issue a key with its own scopes", async () => {
    const child = await issueWith(server, writer.secret, { name: "rw-child", scopes: ["api_keys:read", "api_keys:write"] });
    expect([...child.scopes].sort()).toEqual(["api_keys:read", "api_keys:write"]);
  });

  it("a read+write key cannot issue a key with audit:read (403)", async () => {
    const res = await rest(server, "POST", "/v1/api-keys", { key: writer.secret, body: { name: "esc-1", scopes: ["audit:read"] } });
    expectError(res, 403, "permission_denied", "audit:read");
    const mixed = await rest(server, "POST", "/v1/api-keys", {
      key: writer.secret,
      body: { name: "esc-2", scopes: ["api_keys:read", "audit:read"] },
    });
    expectError(mixed, 403, "permission_denied");
  });

  it("a restricted key that omits scopes (asking for an unrestricted key) gets 403 naming scopes", async () => {
    const omitted = await rest(server, "POST", "/v1/api-keys", { key: writer.secret, body: { name: "esc-3" } });
    expectError(omitted, 403, "permission_denied", "scopes");
    const empty = await rest(server, "POST", "/v1/api-keys", { key: writer.secret, body: { name: "esc-4", scopes: [] } });
    expectError(empty, 403, "permission_denied", "scopes");
  });

  it("refused escalations created no keys", async () => {
    const res = await rest(server, "GET", "/v1/api-keys?include_inactive=true&page_size=100", { key: root.secret });
    const names = res.body.data.map((k: any) => k.name);
    for (const n of ["esc-1", "esc-2", "esc-3", "esc-4"]) expect(names).not.toContain(n);
  });

  it("an unrestricted key can issue any scopes", async () => {
    const child = await issueWith(server, root.secret, { name: "any", scopes: ["audit:read", "api_keys:read", "custom:thing"] });
    expect([...child.scopes].sort()).toEqual(["api_keys:read", "audit:read", "custom:thing"]);
  });

  it("a key without api_keys:read gets 403 on list and get", async () => {
    expectError(await rest(server, "GET", "/v1/api-keys", { key: auditor.secret }), 403, "permission_denied", "api_keys:read");
    expectError(await rest(server, "GET", `/v1/api-keys/${auditor.id}`, { key: auditor.secret }), 403, "permission_denied");
  });

  it("a key without api_keys:write gets 403 on issue, update and revoke, and nothing changes", async () => {
    expectError(await rest(server, "POST", "/v1/api-keys", { key: reader.secret, body: { name: "r", scopes: ["api_keys:read"] } }), 403, "permission_denied");
    expectError(await rest(server, "PATCH", `/v1/api-keys/${writer.id}`, { key: reader.secret, body: { name: "r" } }), 403, "permission_denied");
    expectError(await rest(server, "DELETE", `/v1/api-keys/${writer.id}`, { key: reader.secret }), 403, "permission_denied");
    const got = await rest(server, "GET", `/v1/api-keys/${writer.id}`, { key: root.secret });
    expect(got.body.name).toBe("writer");
    expect(got.body.is_active).toBe(true);
  });

  it("a key without audit:read gets 403 on audit-events; a key with it gets 200", async () => {
    expectError(await rest(server, "GET", "/v1/audit-events", { key: writer.secret }), 403, "permission_denied", "audit:read");
    expectError(await rest(server, "GET", "/v1/audit-events", { key: reader.secret }), 403, "permission_denied");
    const ok = await rest(server, "GET", "/v1/audit-events", { key: auditor.secret });
    expect(ok.status).toBe(200);
    expect(ok.body.data.length).toBeGreaterThan(0);
  });

  it("a scope-restricted key that is also instance-bound cannot widen either", async () => {
    const X = uuid();
    const narrow = await issueWith(server, root.secret, { name: "narrow", scopes: ["api_keys:read", "api_keys:write"], instance_id: X });
    expectError(
      await rest(server, "POST", "/v1/api-keys", { key: narrow.secret, body: { name: "n1", scopes: ["api_keys:read"] } }),
      403,
      "permission_denied",
      "instance_id",
    );
    expectError(
      await rest(server, "POST", "/v1/api-keys", { key: narrow.secret, body: { name: "n2", instance_id: X } }),
      403,
      "permission_denied",
      "scopes",
    );
    const ok = await issueWith(server, narrow.secret, { name: "n3", instance_id: X, scopes: ["api_keys:read"] });
    expect(ok.instance_id).toBe(X);
    expect(ok.scopes).toEqual(["api_keys:read"]);
  });
});
