import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import {
  auditTrail,
  expectError,
  ISO_UTC,
  issueWith,
  KEY_FIELDS,
  KEY_ID_PATTERN,
  SECRET_PATTERN,
  specChecksum,
} from "../helpers/rest-support.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Every /v1 route's happy path (SPEC §3) and pagination. Revocation taking effect at once is proven
 * once, on every transport and store, in store-behaviours.ts.
 */
let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

/** A fresh customer with an unrestricted bootstrap key issued by the internal credential. */
async function customer() {
  const customerId = uuid();
  const root = await issueAsInternal(server, customerId, { name: "root" });
  return { customerId, root };
}

describe("POST /v1/api-keys", () => {
  it("issues a key: 201, Location of the new key, the SPEC key object plus a well-formed secret", async () => {
    const { customerId, root } = await customer();
    const before = Date.now();
    const res = await rest(server, "POST", "/v1/api-keys", {
      key: root.secret,
      body: { name: "app-2026-q2", scopes: ["api_keys:read"], metadata: { team: "core" } },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const k = res.body;
    expect(Object.keys(k).sort()).toEqual([...KEY_FIELDS, "secret"].sort());
    expect(k.id).toMatch(KEY_ID_PATTERN);
    expect(res.headers.get("location")).toBe(`/v1/api-keys/${k.id}`);
    expect(k.customer_id).toBe(customerId);
    expect(k.instance_id).toBeNull();
    expect(k.name).toBe("app-2026-q2");
    expect(k.environment).toBe("live");
    expect(k.scopes).toEqual(["api_keys:read"]);
    expect(k.metadata).toEqual({ team: "core" });
    expect(k.last_used_at).toBeNull();
    expect(k.total_requests).toBe(0);
    expect(k.expires_at).toBeNull();
    expect(k.revoked_at).toBeNull();
    expect(k.is_active).toBe(true);
    expect(k.created_at).toMatch(ISO_UTC);
    expect(k.updated_at).toBe(k.created_at);
    expect(Date.parse(k.created_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(k.created_at)).toBeLessThanOrEqual(Date.now() + 1000);

    expect(k.secret).toMatch(SECRET_PATTERN);
    expect(k.secret.startsWith("zpk_live_")).toBe(true);
    expect(k.prefix).toBe(k.secret.slice(0, 17));
    expect(k.secret.slice(-6)).toBe(specChecksum(k.secret.slice(0, -6)));
  });

  it("issues a test-environment key whose secret and prefix start with zpk_test_", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret, { environment: "test" });
    expect(k.environment).toBe("test");
    expect(k.secret).toMatch(/^zpk_test_/);
    expect(k.secret).toMatch(SECRET_PATTERN);
    expect(k.prefix).toBe(k.secret.slice(0, 17));
    expect(k.secret.slice(-6)).toBe(specChecksum(k.secret.slice(0, -6)));
  });

  it("every issued secret is different, and the newly issued key authenticates at once", async () => {
    const { root } = await customer();
    const a = await issueWith(server, root.secret);
    const b = await issueWith(server, root.secret);
    expect(a.secret).not.toBe(b.secret);
    expect(a.id).not.toBe(b.id);
    const got = await rest(server, "GET", `/v1/api-keys/${b.id}`, { key: a.secret });
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(b.id);
  });

  it("accepts a name of exactly 128 characters, counting characters rather than bytes", async () => {
    const { root } = await customer();
    const name = "n".repeat(128);
    const k = await issueWith(server, root.secret, { name });
    expect(k.name).toBe(name);
    const emoji = "\u{1F600}".repeat(128);
    const e = await issueWith(server, root.secret, { name: emoji });
    expect(e.name).toBe(emoji);
    const got = await rest(server, "GET", `/v1/api-keys/${e.id}`, { key: root.secret });
    expect(got.body.name).toBe(emoji);
  });

  it("an expires_at with a UTC offset is stored as that instant and returned in UTC", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret, { expires_at: "2030-01-01T02:00:00+02:00" });
    expect(k.expires_at).toMatch(ISO_UTC);
    expect(Date.parse(k.expires_at)).toBe(Date.parse("2030-01-01T00:00:00Z"));
  });
});

describe("GET /v1/api-keys", () => {
  it("lists the customer's keys newest first as {data, next_page_token: null}, without secrets", async () => {
    const { root } = await customer();
    const a = await issueWith(server, root.secret, { name: "a" });
    const b = await issueWith(server, root.secret, { name: "b" });
    const c = await issueWith(server, root.secret, { name: "c" });
    const res = await rest(server, "GET", "/v1/api-keys", { key: root.secret });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["data", "next_page_token", "total_size"]);
    expect(res.body.next_page_token).toBeNull();
    expect(res.body.data.map((k: any) => k.id)).toEqual([c.id, b.id, a.id, root.id]);
    for (const k of res.body.data) {
      expect(Object.keys(k).sort()).toEqual(KEY_FIELDS);
    }
    const text = JSON.stringify(res.body);
    for (const s of [root.secret, a.secret, b.secret, c.secret]) expect(text).not.toContain(s);
  });

  it("accepts the X-API-Key header as well as Authorization: Bearer", async () => {
    const { root } = await customer();
    const res = await rest(server, "GET", "/v1/api-keys", { headers: { "x-api-key": root.secret } });
    expect(res.status).toBe(200);
    expect(res.body.data.map((k: any) => k.id)).toEqual([root.id]);
  });

  it("page_size=0 is the default page size (50)", async () => {
    const { root } = await customer();
    const res = await rest(server, "GET", "/v1/api-keys?page_size=0", { key: root.secret });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data.map((k: any) => k.id)).toEqual([root.id]);
  });

  it("shows the caller's own use, this request included, and every key's own fields, as GET /v1/api-keys/{id} does", async () => {
    const { customerId, root } = await customer();
    const a = await issueWith(server, root.secret, { name: "a", metadata: { team: "a" } });
    const b = await issueWith(server, root.secret, { name: "b", scopes: ["api_keys:read"] });
    let page: any[] = [];
    for (let n = 1; n <= 3; n++) {
      const res = await rest(server, "GET", "/v1/api-keys", { key: b.secret });
      expect(res.status).toBe(200);
      page = res.body.data;
      expect(page.map((k: any) => [k.id, k.name])).toEqual([[b.id, "b"], [a.id, "a"], [root.id, "root"]]);
      expect(page[0].total_requests, `list ${n} by b`).toBe(n);
      expect(page[1]).toMatchObject({ total_requests: 0, last_used_at: null, metadata: { team: "a" } });
    }
    for (const k of page) {
      const one = await rest(server, "GET", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: server.internalToken });
      expect(one.body, k.name).toEqual(k);
    }
  });

  it("filters by instance_id", async () => {
    const { root } = await customer();
    const x = uuid();
    const bound = await issueWith(server, root.secret, { name: "bound", instance_id: x });
    await issueWith(server, root.secret, { name: "other", instance_id: uuid() });
    const res = await rest(server, "GET", `/v1/api-keys?instance_id=${x}`, { key: root.secret });
    expect(res.status).toBe(200);
    expect(res.body.data.map((k: any) => k.id)).toEqual([bound.id]);
    expect(res.body.data[0].instance_id).toBe(x);
  });
});

describe("GET /v1/api-keys/{id}", () => {
  it("returns the key object, equal to what issue returned less the secret", async () => {
    const { root } = await customer();
    const { secret, ...issued } = await issueWith(server, root.secret, { name: "one", metadata: { a: "b" } });
    const res = await rest(server, "GET", `/v1/api-keys/${issued.id}`, { key: root.secret });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(KEY_FIELDS);
    expect(res.body).toEqual(issued);
    expect(JSON.stringify(res.body)).not.toContain(secret);
  });

  it("an id that does not exist is 404 not_found", async () => {
    const { root } = await customer();
    const res = await rest(server, "GET", "/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", { key: root.secret });
    expectError(res, 404, "not_found");
    const junk = await rest(server, "GET", "/v1/api-keys/not-a-key-id", { key: root.secret });
    expectError(junk, 404, "not_found");
  });

  it("shows usage: total_requests and last_used_at grow as the key is used", async () => {
    const { customerId, root } = await customer();
    const user = await issueWith(server, root.secret, { name: "user" });
    for (let i = 0; i < 3; i++) {
      expect((await rest(server, "GET", "/v1/api-keys", { key: user.secret })).status).toBe(200);
    }
    await sleep(300);
    const res = await rest(server, "GET", `/v1/api-keys/${user.id}?customer_id=${customerId}`, { key: server.internalToken });
    expect(res.status).toBe(200);
    expect(res.body.total_requests).toBe(3);
    expect(res.body.last_used_at).toMatch(ISO_UTC);
    expect(Date.parse(res.body.last_used_at)).toBeGreaterThanOrEqual(Date.parse(user.created_at));
  });
});

describe("PATCH /v1/api-keys/{id}", () => {
  it("changes name, metadata and expires_at, and the change is what a later GET sees", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret, { name: "before", metadata: { a: "1" } });
    await sleep(5);
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const res = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, {
      key: root.secret,
      body: { name: "after", metadata: { b: "2" }, expires_at: expiresAt },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(KEY_FIELDS);
    expect(res.body.name).toBe("after");
    expect(res.body.metadata).toEqual({ b: "2" });
    expect(Date.parse(res.body.expires_at)).toBe(Date.parse(expiresAt));
    expect(res.body.is_active).toBe(true);
    expect(Date.parse(res.body.updated_at)).toBeGreaterThan(Date.parse(k.updated_at));
    expect(res.body.created_at).toBe(k.created_at);
    expect(res.body.prefix).toBe(k.prefix);
    expect(JSON.stringify(res.body)).not.toContain(k.secret);

    const got = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(got.body).toEqual(res.body);
  });

  it("changing only the name leaves metadata and expiry as they were", async () => {
    const { root } = await customer();
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const k = await issueWith(server, root.secret, { name: "x", metadata: { keep: "me" }, expires_at: expiresAt });
    const res = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { name: "y" } });
    expect(res.status).toBe(200);
    expect(res.body.name).toBe("y");
    expect(res.body.metadata).toEqual({ keep: "me" });
    expect(Date.parse(res.body.expires_at)).toBe(Date.parse(expiresAt));
  });

  it('"expires_at": null clears the expiry', async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret, { expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect(k.expires_at).not.toBeNull();
    const res = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { expires_at: null } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.expires_at).toBeNull();
    const got = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(got.body.expires_at).toBeNull();
  });

  it("refuses to change scopes or instance_id (400) and leaves the key unchanged", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret, { scopes: ["api_keys:read"] });
    const scopes = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { scopes: [] } });
    expectError(scopes, 400, "invalid_argument", "scopes");
    const bind = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { instance_id: uuid() } });
    expectError(bind, 400, "invalid_argument", "instance_id");
    const both = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, {
      key: root.secret,
      body: { name: "sneaky", scopes: ["audit:read"] },
    });
    expectError(both, 400, "invalid_argument");
    const got = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(got.body.scopes).toEqual(["api_keys:read"]);
    expect(got.body.instance_id).toBeNull();
    expect(got.body.name).toBe(k.name);
  });

  it("a blank name in a PATCH is refused with 400", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret);
    const res = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { name: "  " } });
    expectError(res, 400, "invalid_argument", "name");
  });

  it("an expires_at in the past in a PATCH is refused with 400", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret);
    const res = await rest(server, "PATCH", `/v1/api-keys/${k.id}`, {
      key: root.secret,
      body: { expires_at: new Date(Date.now() - 60_000).toISOString() },
    });
    expectError(res, 400, "invalid_argument", "expires_at");
    const got = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(got.body.expires_at).toBeNull();
    expect(got.body.is_active).toBe(true);
  });
});

describe("DELETE /v1/api-keys/{id}", () => {
  it("revokes: 204 with an empty body; the key then shows revoked_at and is_active false", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret);
    const res = await fetch(`${server.url}/v1/api-keys/${k.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${root.secret}` },
    });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    const got = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(got.status).toBe(200);
    expect(got.body.revoked_at).toMatch(ISO_UTC);
    expect(got.body.is_active).toBe(false);
  });

  it("a revoked key drops out of the default list but shows with include_inactive=true", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret);
    expect((await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret })).status).toBe(204);
    const active = await rest(server, "GET", "/v1/api-keys", { key: root.secret });
    expect(active.body.data.map((x: any) => x.id)).toEqual([root.id]);
    const all = await rest(server, "GET", "/v1/api-keys?include_inactive=true", { key: root.secret });
    expect(all.body.data.map((x: any) => x.id)).toEqual([k.id, root.id]);
    expect(all.body.data[0].is_active).toBe(false);
  });

  it("revoking twice is 204 both times and writes one api_key.revoked event, keeping the first revoked_at", async () => {
    const { customerId, root } = await customer();
    const k = await issueWith(server, root.secret);
    const first = await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(first.status).toBe(204);
    expect(first.body).toBeUndefined();
    const revokedAt = (await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret })).body.revoked_at;
    await sleep(20);
    const second = await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(second.status).toBe(204);
    expect(second.body).toBeUndefined();
    await sleep(300);
    const events = await auditTrail(server, customerId, `action=api_key.revoked&target_id=${k.id}`);
    expect(events).toHaveLength(1);
    const again = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(again.body.revoked_at).toBe(revokedAt);
  });

  it("a key that revokes itself is refused on its next request", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret);
    expect((await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: k.secret })).status).toBe(204);
    expectError(await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: k.secret }), 401, ["key_revoked", "unauthenticated"]);
    // the revoked key can no longer revoke or issue anything either
    expectError(await rest(server, "POST", "/v1/api-keys", { key: k.secret, body: { name: "z" } }), 401, [
      "key_revoked",
      "unauthenticated",
    ]);
  });

  it("deleting an id that does not exist is 404 not_found", async () => {
    const { root } = await customer();
    const res = await rest(server, "DELETE", "/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", { key: root.secret });
    expectError(res, 404, "not_found");
  });
});

describe("GET /v1/audit-events", () => {
  it("returns the customer's trail newest first as {data, next_page_token: null}", async () => {
    const { root } = await customer();
    const k = await issueWith(server, root.secret, { name: "a" });
    await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: root.secret, body: { name: "b" } });
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    const res = await rest(server, "GET", "/v1/audit-events", { key: root.secret });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["data", "next_page_token"]);
    expect(res.body.next_page_token).toBeNull();
    const actions = res.body.data.map((e: any) => `${e.action}:${e.target?.key_id}`);
    expect(actions).toEqual([
      `api_key.revoked:${k.id}`,
      `api_key.updated:${k.id}`,
      `api_key.issued:${k.id}`,
      `api_key.issued:${root.id}`,
    ]);
    const times = res.body.data.map((e: any) => Date.parse(e.time));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it("filters by action and by target_id", async () => {
    const { root } = await customer();
    const a = await issueWith(server, root.secret, { name: "a" });
    const b = await issueWith(server, root.secret, { name: "b" });
    await rest(server, "PATCH", `/v1/api-keys/${a.id}`, { key: root.secret, body: { name: "a2" } });
    await rest(server, "DELETE", `/v1/api-keys/${b.id}`, { key: root.secret });

    const issued = await rest(server, "GET", "/v1/audit-events?action=api_key.issued", { key: root.secret });
    expect(issued.status).toBe(200);
    expect(issued.body.data.map((e: any) => e.target.key_id)).toEqual([b.id, a.id, root.id]);
    expect(issued.body.data.every((e: any) => e.action === "api_key.issued")).toBe(true);

    const forA = await rest(server, "GET", `/v1/audit-events?target_id=${a.id}`, { key: root.secret });
    expect(forA.body.data.map((e: any) => e.action)).toEqual(["api_key.updated", "api_key.issued"]);

    const both = await rest(server, "GET", `/v1/audit-events?target_id=${b.id}&action=api_key.revoked`, { key: root.secret });
    expect(both.body.data).toHaveLength(1);
    expect(both.body.data[0].target.key_id).toBe(b.id);
  });

  it("filters by since and until", async () => {
    const { root } = await customer();
    const a = await issueWith(server, root.secret, { name: "a" });
    await sleep(60);
    const t1 = new Date().toISOString();
    await sleep(60);
    const b = await issueWith(server, root.secret, { name: "b" });
    await sleep(60);
    const t2 = new Date().toISOString();
    await sleep(60);
    const c = await issueWith(server, root.secret, { name: "c" });

    const ids = async (q: string) => {
      const res = await rest(server, "GET", `/v1/audit-events?action=api_key.issued&${q}`, { key: root.secret });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.data.map((e: any) => e.target.key_id);
    };
    expect(await ids(`since=${encodeURIComponent(t1)}`)).toEqual([c.id, b.id]);
    expect(await ids(`until=${encodeURIComponent(t1)}`)).toEqual([a.id, root.id]);
    expect(await ids(`since=${encodeURIComponent(t1)}&until=${encodeURIComponent(t2)}`)).toEqual([b.id]);
    expect(await ids(`since=${encodeURIComponent(t2)}`)).toEqual([c.id]);
  });

  it("refuses since after until, a bad timestamp and an out-of-range page_size with 400", async () => {
    const { root } = await customer();
    const late = new Date().toISOString();
    const early = new Date(Date.now() - 60_000).toISOString();
    expectError(
      await rest(server, "GET", `/v1/audit-events?since=${encodeURIComponent(late)}&until=${encodeURIComponent(early)}`, { key: root.secret }),
      400,
      "invalid_argument",
    );
    expectError(await rest(server, "GET", "/v1/audit-events?since=yesterday", { key: root.secret }), 400, "invalid_argument", "since");
    expectError(await rest(server, "GET", "/v1/audit-events?page_size=101", { key: root.secret }), 400, "invalid_argument", "page_size");
    expectError(await rest(server, "GET", "/v1/audit-events?page_token=garbage!!", { key: root.secret }), 400, "invalid_argument", "page_token");
  });
});

describe("pagination", () => {
  it("walking 26 keys with page_size=7 gives every key once, newest first, and ends with next_page_token null", async () => {
    const { root } = await customer();
    const issued = [root.id];
    for (let i = 0; i < 25; i++) issued.push((await issueWith(server, root.secret, { name: `k${i}` })).id);

    const seen: string[] = [];
    const sizes: number[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const q: string = token ? `page_size=7&page_token=${encodeURIComponent(token)}` : "page_size=7";
      const res = await rest(server, "GET", `/v1/api-keys?${q}`, { key: root.secret });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      sizes.push(res.body.data.length);
      seen.push(...res.body.data.map((k: any) => k.id));
      token = res.body.next_page_token;
      if (token !== null) expect(typeof token).toBe("string");
      pages++;
      expect(pages).toBeLessThan(10);
    } while (token !== null);

    expect(sizes).toEqual([7, 7, 7, 5]);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...issued].reverse());
  });

  it("a page walk is not disturbed by keys issued while walking (no duplicates, no gaps)", async () => {
    const { root } = await customer();
    const issued = [root.id];
    for (let i = 0; i < 9; i++) issued.push((await issueWith(server, root.secret, { name: `k${i}` })).id);
    const first = await rest(server, "GET", "/v1/api-keys?page_size=4", { key: root.secret });
    const seen = first.body.data.map((k: any) => k.id);
    await issueWith(server, root.secret, { name: "late" });
    let token = first.body.next_page_token;
    while (token) {
      const res = await rest(server, "GET", `/v1/api-keys?page_size=4&page_token=${encodeURIComponent(token)}`, { key: root.secret });
      seen.push(...res.body.data.map((k: any) => k.id));
      token = res.body.next_page_token;
    }
    expect(seen).toEqual([...issued].reverse());
  });

  it("audit events paginate the same way", async () => {
    const { root } = await customer();
    for (let i = 0; i < 9; i++) await issueWith(server, root.secret, { name: `k${i}` });
    const all = (await rest(server, "GET", "/v1/audit-events", { key: root.secret })).body.data.map((e: any) => e.id);
    expect(all).toHaveLength(10);
    const seen: string[] = [];
    let token: string | null = null;
    do {
      const q: string = token ? `page_size=3&page_token=${encodeURIComponent(token)}` : "page_size=3";
      const res = await rest(server, "GET", `/v1/audit-events?${q}`, { key: root.secret });
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((e: any) => e.id));
      token = res.body.next_page_token;
    } while (token);
    expect(seen).toEqual(all);
  });

  it("a garbage page_token is 400 invalid_argument", async () => {
    const { root } = await customer();
    for (const t of ["garbage", "!!!", "a".repeat(500)]) {
      expectError(await rest(server, "GET", `/v1/api-keys?page_token=${encodeURIComponent(t)}`, { key: root.secret }), 400, "invalid_argument", "page_token");
    }
  });
});
