import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorShapeProblems, rawBody, rawExchange, rawExchangeInChunks } from "../helpers/fuzz-http.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail, expectError, issueWith, wellFormedUnknownKey, withWrongChecksum } from "../helpers/rest-support.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Every error row of SPEC §3 over REST: the status, the `{"error":{"code","message"},"request_id"}`
 * body with `X-Request-Id` equal to `request_id`, and never a 500. The server runs with a 2 KiB
 * body limit so the 413 row is cheap to reach.
 */
let server: RunningServer;
let customerId: string;
let root: Awaited<ReturnType<typeof issueAsInternal>>;
beforeAll(async () => {
  server = await startServer({ BODY_LIMIT_BYTES: "2048", RATE_LIMIT_CAPACITY: "100000", RATE_LIMIT_REFILL_PER_SEC: "1000" });
  customerId = uuid();
  root = await issueAsInternal(server, customerId, { name: "root" });
});
afterAll(async () => {
  await server?.stop();
});

const post = (body: unknown, key = root.secret) =>
  rest(server, "POST", "/v1/api-keys", typeof body === "string" ? { key, rawBody: body, headers: { "content-type": "application/json" } } : { key, body });

/** The customer's active keys, to prove a refused request left nothing behind. */
const keyCount = async () => (await rest(server, "GET", "/v1/api-keys?include_inactive=true&page_size=100", { key: root.secret })).body.data.length;

describe("error responses", () => {
  it("carry the code in the body only: no header of ours names it", async () => {
    const answers = [
      [await post({ name: "x", colour: "red" }), 400, "invalid_argument"],
      [await rest(server, "GET", "/v1/api-keys?api_key=zpk_live_x"), 400, "key_in_url"],
      [await rest(server, "GET", "/v1/api-keys"), 401, "unauthenticated"],
      [await rest(server, "GET", "/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", { key: root.secret }), 404, "not_found"],
      [await rest(server, "PUT", "/v1/api-keys", { key: root.secret }), 405, "method_not_allowed"],
      [await post("x".repeat(4096)), 413, "payload_too_large"],
    ] as const;
    for (const [res, status, code] of answers) {
      expectError(res, status, code);
      expect([...res.headers.keys()].filter((k) => k.startsWith("zpk-")), `${code} headers`).toEqual([]);
    }
  });
});

describe("400 invalid_argument", () => {
  it.each([
    ["truncated JSON", '{"name": "x"'],
    ["not JSON at all", "name=x"],
    ["a trailing comma", '{"name": "x",}'],
  ])("malformed JSON (%s) is 400 and creates nothing", async (_label, raw) => {
    const before = await keyCount();
    expectError(await post(raw), 400, "invalid_argument");
    expect(await keyCount()).toBe(before);
  });

  it("a JSON body that is not an object is 400", async () => {
    for (const raw of ["[]", '"x"', "42", "null"]) {
      const res = await post(raw);
      expectError(res, 400, "invalid_argument");
    }
  });

  it("an unknown field is 400 and the message names it", async () => {
    expectError(await post({ name: "x", colour: "red" }), 400, "invalid_argument", "colour");
  });

  it("an unknown query parameter is 400 and the message names it", async () => {
    expectError(await rest(server, "GET", "/v1/api-keys?colour=red", { key: root.secret }), 400, "invalid_argument", "colour");
  });

  it.each([
    ["name", { name: 5 }],
    ["name", { name: ["x"] }],
    ["scopes", { name: "x", scopes: "api_keys:read" }],
    ["scopes", { name: "x", scopes: [1, 2] }],
    ["metadata", { name: "x", metadata: { a: 1 } }],
    ["metadata", { name: "x", metadata: "a=b" }],
    ["expires_at", { name: "x", expires_at: "tomorrow" }],
    ["expires_at", { name: "x", expires_at: 12345 }],
    ["instance_id", { name: "x", instance_id: 7 }],
    ["environment", { name: "x", environment: "prod" }],
  ])("a wrong type or value for %s is 400 naming the field", async (field, body) => {
    const before = await keyCount();
    expectError(await post(body), 400, "invalid_argument", field);
    expect(await keyCount()).toBe(before);
  });

  it("more than 20 metadata entries, a malformed scope, or control characters in the name are 400 naming the field", async () => {
    const metadata: Record<string, string> = {};
    for (let i = 0; i < 21; i++) metadata[`k${i}`] = "v";
    expectError(await post({ name: "x", metadata }), 400, "invalid_argument", "metadata");
    expectError(await post({ name: "x", scopes: ["has space"] }), 400, "invalid_argument", "scopes");
    expectError(await post({ name: "x", scopes: [""] }), 400, "invalid_argument", "scopes");
    expectError(await post({ name: "a\u0000b" }), 400, "invalid_argument", "name");
  });

  it("a query parameter given twice is 400", async () => {
    expectError(await rest(server, "GET", "/v1/api-keys?page_size=1&page_size=2", { key: root.secret }), 400, "invalid_argument", "page_size");
  });

  it("a malformed percent-encoding in the key id is a client error (400/404), not a 500", async () => {
    for (const [method, path] of [
      ["GET", "/v1/api-keys/%E0%A4%A"],
      ["PATCH", "/v1/api-keys/%ZZ"],
      ["DELETE", "/v1/api-keys/key_%"],
    ] as const) {
      const res = await rest(server, method, path, { key: root.secret, ...(method === "PATCH" ? { body: { name: "x" } } : {}) });
      expect([400, 404], `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
      expectError(res, res.status, res.status === 400 ? "invalid_argument" : "not_found");
    }
  });

  it("a name over 128 characters is 400 naming name", async () => {
    expectError(await post({ name: "n".repeat(129) }), 400, "invalid_argument", "name");
  });

  it("a blank or missing name is 400 naming name", async () => {
    for (const body of [{ name: "" }, { name: "   " }, {}]) {
      expectError(await post(body), 400, "invalid_argument", "name");
    }
    expectError(await post(""), 400, "invalid_argument");
  });

  it("an expires_at in the past (or now) is 400 naming expires_at", async () => {
    expectError(await post({ name: "x", expires_at: new Date(Date.now() - 1000).toISOString() }), 400, "invalid_argument", "expires_at");
    expectError(await post({ name: "x", expires_at: "2001-01-01T00:00:00Z" }), 400, "invalid_argument", "expires_at");
  });

  it("an instance_id that is not a UUID is 400 naming instance_id", async () => {
    expectError(await post({ name: "x", instance_id: "instance-1" }), 400, "invalid_argument", "instance_id");
    expectError(await rest(server, "GET", "/v1/api-keys?instance_id=nope", { key: root.secret }), 400, "invalid_argument", "instance_id");
  });

  it("page_size=0 (or omitted) means the default page size of 50, not an error", async () => {
    const other = await issueAsInternal(server, uuid(), { name: "root" });
    for (let i = 0; i < 51; i++) await issueWith(server, other.secret, { name: `k${i}` });
    for (const q of ["?page_size=0", ""]) {
      const res = await rest(server, "GET", `/v1/api-keys${q}`, { key: other.secret });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.data).toHaveLength(50);
      expect(typeof res.body.next_page_token).toBe("string");
    }
  });

  it.each(["101", "abc", "-1", "1.5", "99999999999"])("page_size=%s is 400 naming page_size", async (size) => {
    expectError(await rest(server, "GET", `/v1/api-keys?page_size=${size}`, { key: root.secret }), 400, "invalid_argument", "page_size");
  });

  it("page_size at the bounds 1 and 100 is accepted", async () => {
    for (const size of [1, 100]) {
      expect((await rest(server, "GET", `/v1/api-keys?page_size=${size}`, { key: root.secret })).status).toBe(200);
    }
  });

  it("include_inactive that is not a boolean is 400", async () => {
    expectError(await rest(server, "GET", "/v1/api-keys?include_inactive=maybe", { key: root.secret }), 400, "invalid_argument", "include_inactive");
  });
});

describe("400 key_in_url", () => {
  it.each([
    "?api_key=x",
    "?key=x",
    "?token=x",
    "?access_token=x",
    "?foo=zpk_live_abcdefghijklmnopqrstuvwxyz",
    "?page_size=5&x=zpk_test_abc",
  ])("a key in the query string (%s) is refused with 400 key_in_url, before authentication", async (q) => {
    // no credential at all: the key-in-URL check comes first
    expectError(await rest(server, "GET", `/v1/api-keys${q}`), 400, "key_in_url");
    // a valid credential does not make it acceptable
    expectError(await rest(server, "GET", `/v1/api-keys${q}`, { key: root.secret }), 400, "key_in_url");
  });

  it("a real key in the query string is refused and not used to authenticate", async () => {
    const k = await issueWith(server, root.secret);
    const res = await rest(server, "GET", `/v1/api-keys?api_key=${k.secret}`);
    expectError(res, 400, "key_in_url");
    const res2 = await rest(server, "GET", `/v1/api-keys?q=${k.secret}`);
    expectError(res2, 400, "key_in_url");
    await sleep(300);
    const got = await rest(server, "GET", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: server.internalToken });
    expect(got.body.total_requests).toBe(0);
    expect(got.body.last_used_at).toBeNull();
  });

  it("a revoked key in the query string is still key_in_url, not 401", async () => {
    const k = await issueWith(server, root.secret);
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    expectError(await rest(server, "GET", `/v1/api-keys?token=${k.secret}`, { key: k.secret }), 400, "key_in_url");
  });

  it("key_in_url also guards POST and the audit route", async () => {
    expectError(await rest(server, "POST", "/v1/api-keys?api_key=x", { body: { name: "x" } }), 400, "key_in_url");
    expectError(await rest(server, "GET", "/v1/audit-events?access_token=x"), 400, "key_in_url");
  });
});

describe("401 unauthenticated", () => {
  it("no key is 401 unauthenticated", async () => {
    expectError(await rest(server, "GET", "/v1/api-keys"), 401, "unauthenticated");
    expectError(await rest(server, "POST", "/v1/api-keys", { body: { name: "x" } }), 401, "unauthenticated");
    expectError(await rest(server, "GET", "/v1/audit-events"), 401, "unauthenticated");
  });

  it.each([
    ["a garbage bearer token", { authorization: "Bearer hello" }],
    ["an empty bearer", { authorization: "Bearer " }],
    ["a non-bearer scheme", { authorization: "Basic dXNlcjpwYXNz" }],
    ["a garbage X-API-Key", { "x-api-key": "not-a-key" }],
    ["an overlong token", { authorization: `Bearer zpk_live_${"a".repeat(5000)}` }],
  ])("%s is 401 unauthenticated", async (_label, headers) => {
    expectError(await rest(server, "GET", "/v1/api-keys", { headers }), 401, "unauthenticated");
  });

  it("a well-formed key with a wrong checksum is 401 unauthenticated", async () => {
    const bad = withWrongChecksum(root.secret);
    expectError(await rest(server, "GET", "/v1/api-keys", { key: bad }), 401, "unauthenticated");
  });

  it("a well-formed key with a valid checksum that was never issued is 401 unauthenticated", async () => {
    expectError(await rest(server, "GET", "/v1/api-keys", { key: wellFormedUnknownKey() }), 401, "unauthenticated");
    expectError(await rest(server, "GET", "/v1/api-keys", { key: wellFormedUnknownKey("test") }), 401, "unauthenticated");
  });

  it("a key past its expires_at is 401 key_expired, and shows as inactive", async () => {
    const t0 = Date.now();
    const k = await issueWith(server, root.secret, { expires_at: new Date(t0 + 1500).toISOString() });
    expect(k.is_active).toBe(true);
    expect((await rest(server, "GET", "/v1/api-keys", { key: k.secret })).status).toBe(200);
    await sleep(Math.max(0, t0 + 1700 - Date.now()));
    expectError(await rest(server, "GET", "/v1/api-keys", { key: k.secret }), 401, "key_expired");
    const got = await rest(server, "GET", `/v1/api-keys/${k.id}`, { key: root.secret });
    expect(got.body.is_active).toBe(false);
    expect(got.body.revoked_at).toBeNull();
    const active = await rest(server, "GET", "/v1/api-keys?page_size=100", { key: root.secret });
    expect(active.body.data.map((x: any) => x.id)).not.toContain(k.id);
  });

  it("the X-API-Key header is accepted in place of Authorization", async () => {
    const res = await rest(server, "GET", "/v1/api-keys", { headers: { "x-api-key": root.secret } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });
});

describe("requests Node's HTTP parser refuses", () => {
  /** The status and parsed error body of a raw request, and any SPEC §3 shape problems. */
  async function raw(wire: string) {
    const res = await rawExchange(server.port, Buffer.from(wire, "latin1"));
    const { headers, body } = rawBody(res.text);
    const hdrs = Object.fromEntries(
      headers.split("\r\n").slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
    );
    return { status: res.status, error: JSON.parse(body || "{}").error, problems: errorShapeProblems(res.status ?? 0, hdrs, body) };
  }

  it.each([
    ["a header line without a colon", "GET /v1/api-keys HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"],
    ["a request line that is not HTTP", "HELLO THERE\r\n\r\n"],
    ["an unknown HTTP version", "GET /v1/api-keys HTTP/7.0\r\nHost: x\r\n\r\n"],
  ])("%s is a JSON 400 invalid_argument with a request id, not a bare 400", async (_what, wire) => {
    const res = await raw(wire);
    expect(res.status).toBe(400);
    expect(res.error).toEqual({ code: "invalid_argument", message: "malformed HTTP request" });
    expect(res.problems).toEqual([]);
  });

  it("headers over 16 KiB are a JSON 400 invalid_argument that says so (Node alone sends a bare 431)", async () => {
    const res = await raw(`GET /v1/api-keys HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(res.error.code).toBe("invalid_argument");
    expect(res.error.message).toMatch(/headers.*16 KiB/);
    expect(res.problems).toEqual([]);
  });

  /**
   * The parser refuses before any transport sees the URL or knows the protocol, so a Connect call
   * with a key in its query string gets this same refusal, not Connect's key-in-URL error.
   * Found by hostile-fuzz seed 985993904.
   */
  it("a Connect call with a key in its URL and headers over 16 KiB gets the same JSON 400; with small headers, Connect's key-in-URL error", async () => {
    const call = (extra: string) =>
      `POST /apikeys.v1.ApiKeyService/ListKeys?api_key=zpk_live_x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n${extra}\r\n{}`;
    const big = await raw(call(`X-Big: ${"a".repeat(20_000)}\r\n`));
    expect(big.status).toBe(400);
    expect(big.error).toEqual({ code: "invalid_argument", message: "request headers are larger than 16 KiB" });
    expect(big.problems).toEqual([]);
    const small = await rawExchange(server.port, Buffer.from(call(""), "latin1"));
    expect(small.status).toBe(400);
    expect(JSON.parse(rawBody(small.text).body)).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^API keys must not be sent in the URL/) });
  });

  /**
   * A response to HEAD has no body (RFC 9110 §9.3.2): a client reads none, so JSON after the
   * headers would be taken for the start of a second response ("Data after `Connection: close`").
   * Found by hostile-fuzz seed 864945284.
   */
  describe("a refused HEAD request is answered without a body", () => {
    const bigUrl = `/v1/api-keys?x=${"a".repeat(20_000)}`;
    /** Status, lower-cased headers and what came after the blank line. */
    async function head(chunks: string[]) {
      const res = await rawExchangeInChunks(server.port, chunks);
      const end = res.indexOf("\r\n\r\n");
      const headers = Object.fromEntries(
        res.slice(0, end).split("\r\n").slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
      );
      return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(res)?.[1]), headers, afterHeaders: end < 0 ? null : res.slice(end + 4) };
    }
    const expectBodyless = (res: Awaited<ReturnType<typeof head>>) => {
      expect(res.status).toBe(400);
      expect(res.afterHeaders).toBe("");
      expect(res.headers["x-request-id"]).toMatch(/^req_/);
      expect(res.headers["content-length"] ?? "0").toBe("0");
    };

    it("a URL over 16 KiB", async () => {
      expectBodyless(await head([`HEAD ${bigUrl} HTTP/1.1\r\nHost: x\r\n\r\n`]));
    });
    it("a URL over 16 KiB arriving in pieces (the refusal comes with a later piece)", async () => {
      const wire = `HEAD ${bigUrl} HTTP/1.1\r\nHost: x\r\n\r\n`;
      expectBodyless(await head([wire.slice(0, 3), wire.slice(3, 9000), wire.slice(9000)]));
    });
    it("a malformed header line", async () => {
      expectBodyless(await head(["HEAD /v1/api-keys HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"]));
    });
    it("the second request on a keep-alive connection, after a GET", async () => {
      const res = await rawExchangeInChunks(server.port, ["GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", `HEAD ${bigUrl} HTTP/1.1\r\nHost: x\r\n\r\n`]);
      const second = res.slice(res.indexOf("HTTP/1.1 400"));
      expect(second).toMatch(/^HTTP\/1\.1 400 /);
      expect(second.endsWith("\r\n\r\n")).toBe(true);
    });
    it("a GET refused the same way still gets the JSON body", async () => {
      const res = await head([`GET ${bigUrl} HTTP/1.1\r\nHost: x\r\n\r\n`]);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.afterHeaders ?? "").error.code).toBe("invalid_argument");
    });
  });
});

describe("404, 405 and 413", () => {
  it("an unknown route is a JSON 404 not_found", async () => {
    for (const path of ["/v1/nope", "/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B/extra", "/nope", "/v2/api-keys"]) {
      const res = await rest(server, "GET", path, { key: root.secret });
      expectError(res, 404, "not_found");
    }
  });

  it("a wrong method is 405 with an Allow header listing the route's methods", async () => {
    const coll = await rest(server, "PUT", "/v1/api-keys", { key: root.secret, body: { name: "x" } });
    expectError(coll, 405, "method_not_allowed");
    expect(coll.headers.get("allow")?.split(/,\s*/).sort()).toEqual(["GET", "POST"]);

    const one = await rest(server, "POST", "/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", { key: root.secret, body: {} });
    expectError(one, 405, "method_not_allowed");
    expect(one.headers.get("allow")?.split(/,\s*/).sort()).toEqual(["DELETE", "GET", "PATCH"]);

    const audit = await rest(server, "DELETE", "/v1/audit-events", { key: root.secret });
    expectError(audit, 405, "method_not_allowed");
    expect(audit.headers.get("allow")).toBe("GET");
  });

  it("a body over BODY_LIMIT_BYTES is 413 payload_too_large and creates nothing", async () => {
    const before = await keyCount();
    const big = JSON.stringify({ name: "big", metadata: { pad: "x".repeat(3000) } });
    expectError(await post(big), 413, "payload_too_large");
    expect(await keyCount()).toBe(before);
  });

  it("a body just under the limit is not refused as too large", async () => {
    const metadata: Record<string, string> = {};
    for (let i = 0; i < 4; i++) metadata[`k${i}`] = "v".repeat(400);
    const body = { name: "near-limit", metadata };
    expect(JSON.stringify(body).length).toBeLessThan(2048);
    const res = await post(body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });

  it("the server keeps serving after a 413", async () => {
    await post(JSON.stringify({ name: "x".repeat(10_000) }));
    expect((await rest(server, "GET", "/v1/api-keys", { key: root.secret })).status).toBe(200);
  });
});

describe("no error leaks a secret into the trail", () => {
  it("failed requests leave auth.failed events that never hold the presented secret", async () => {
    const k = await issueWith(server, root.secret);
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: root.secret });
    await rest(server, "GET", "/v1/api-keys", { key: k.secret });
    await sleep(600);
    const trail = JSON.stringify(await auditTrail(server, customerId));
    expect(trail).not.toContain(k.secret);
    expect(trail).not.toContain(root.secret);
  });
});
