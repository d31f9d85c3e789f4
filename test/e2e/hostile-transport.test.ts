import * as http2 from "node:http2";
import * as net from "node:net";
import { ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { rawExchange } from "../helpers/fuzz-http.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { allRpcClients } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Issue 12, the transport items, against one real server process on PORT: a key in the URL is
 * refused on every path and protocol, Health/Watch streams are bounded, a stalled HTTP/2 upload is
 * cut, the HTTP/1-vs-2 sniffer waits for enough bytes, the internal token is honoured only as
 * `authorization: Bearer`, key-shaped request ids are replaced, and a client that aborts an
 * upload is no error in the log.
 */

const KEY_IN_URL = "API keys must not be sent in the URL";
/** Small bounds for the test (production defaults are in the README). */
const REQUEST_TIMEOUT_MS = 3_000;
const WATCH_PER_CLIENT = 4;
const WATCH_LIFETIME_MS = 5_000;

let server: RunningServer;
let secret: string;
const customer = uuid();

beforeAll(async () => {
  server = await startServer({
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    HEALTH_WATCH_MAX_PER_CLIENT: String(WATCH_PER_CLIENT),
    HEALTH_WATCH_MAX_LIFETIME_MS: String(WATCH_LIFETIME_MS),
  });
  secret = (await issueAsInternal(server, customer, { name: "transport" })).secret;
}, 60_000);

afterAll(async () => {
  if (server && server.process.exitCode !== null) console.log(`[transport] the server exited early:\n${server.output().slice(-4000)}`);
  await server?.stop();
});

/** Appends `query` to every URL a connect-es transport calls. */
const withQuery =
  (query: string): Interceptor =>
  (next) =>
  (req) =>
    next({ ...req, url: `${req.url}?${query}` });

const transports = (query: string): Array<[string, Transport]> => [
  ["Connect", createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [withQuery(query)] })],
  ["gRPC", createGrpcTransport({ baseUrl: server.url, interceptors: [withQuery(query)] })],
  ["gRPC-Web", createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [withQuery(query)] })],
];

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string } | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
}

describe("a key in the URL is refused on every path of PORT, in each protocol's error form", () => {
  const queries = () => [`api_key=${secret}`, "token=abc", `q=${secret}`, "access_token=x", "KEY=1"];

  it("ApiKeyService over Connect, gRPC and gRPC-Web: INVALID_ARGUMENT with the key_in_url message, even with a valid key in the header", async () => {
    for (const q of queries()) {
      for (const [name, transport] of transports(q)) {
        const client = createClient(ApiKeyService, transport);
        const got = await failure(client.listKeys({}, { headers: { authorization: `Bearer ${secret}` }, timeoutMs: 10_000 }));
        expect(got, `${name} ?${q.slice(0, 12)}`).toMatchObject({ code: 3, message: expect.stringContaining(KEY_IN_URL) });
      }
    }
  });

  it("health (Check, Watch) and reflection over gRPC, Connect and gRPC-Web are refused the same way", async () => {
    for (const [name, transport] of transports("token=abc")) {
      const health = createClient(Health, transport);
      expect(await failure(health.check({ service: "" }, { timeoutMs: 10_000 })), `${name} Check`).toMatchObject({ code: 3, message: expect.stringContaining(KEY_IN_URL) });
      const watch = (async () => {
        for await (const _ of health.watch({ service: "" }, { timeoutMs: 10_000 })) return;
      })();
      expect(await failure(watch), `${name} Watch`).toMatchObject({ code: 3, message: expect.stringContaining(KEY_IN_URL) });
    }
    const [, grpcTransport] = transports(`x=${secret}`)[1]!;
    const reflection = createClient(ServerReflection, grpcTransport);
    const info = (async () => {
      async function* one() {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
      }
      for await (const _ of reflection.serverReflectionInfo(one(), { timeoutMs: 10_000 })) return;
    })();
    expect(await failure(info), "reflection").toMatchObject({ code: 3, message: expect.stringContaining(KEY_IN_URL) });
  });

  it("grpc-js on PORT with the key in :path gets INVALID_ARGUMENT", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError | null>((done) =>
        client.makeUnaryRequest(`/apikeys.v1.ApiKeyService/ListKeys?token=${secret}`, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new grpc.Metadata({}), { deadline: Date.now() + 10_000 }, (e) => done(e)),
      );
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toContain(KEY_IN_URL);
    } finally {
      client.close();
    }
  });

  it("a Connect unary call is answered HTTP 400 with the Connect JSON error body", async () => {
    const res = await fetch(`${server.url}/apikeys.v1.ApiKeyService/ListKeys?api_key=${secret}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secret}` },
      body: "{}",
    });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body).toEqual({ code: "invalid_argument", message: expect.stringContaining(KEY_IN_URL) });
    expect(JSON.stringify(body)).not.toContain(secret);
  });

  it("ops and unknown paths (/healthz, /readyz, /, /nowhere) answer 400 key_in_url", async () => {
    for (const path of ["/healthz", "/readyz", "/", "/nowhere", "/v1/api-keys"]) {
      const res = await rest(server, "GET", `${path}?token=abc`);
      expect(res.status, path).toBe(400);
      expect(res.body.error.code, path).toBe("key_in_url");
    }
  });
});

describe("grpc.health.v1.Health/Watch on PORT is bounded", () => {
  it(`at most ${WATCH_PER_CLIENT} concurrent Watch streams per client address; each ends with OK after its lifetime, then a new one is admitted`, async () => {
    const N = 20;
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const started = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: N }, async () => {
        let first: number | null = null;
        try {
          for await (const res of health.watch({ service: "" })) first ??= res.status;
          return { first, end: "ok" as const, afterMs: Date.now() - started };
        } catch (e) {
          return { first, end: ConnectError.from(e).code, message: ConnectError.from(e).rawMessage, afterMs: Date.now() - started };
        }
      }),
    );
    const served = outcomes.filter((o) => o.first === 1);
    const refused = outcomes.filter((o) => o.end === 8);
    console.log(`[transport] ${N} Watch streams from one address: ${served.length} served (ended ${[...new Set(served.map((o) => o.end))].join(",")} after ${served.map((o) => o.afterMs).join(", ")} ms), ${refused.length} refused RESOURCE_EXHAUSTED`);
    expect(served).toHaveLength(WATCH_PER_CLIENT);
    expect(refused).toHaveLength(N - WATCH_PER_CLIENT);
    expect(refused[0]!.message).toMatch(/too many Health\/Watch streams/);
    for (const o of served) {
      expect(o.end).toBe("ok");
      expect(o.afterMs).toBeGreaterThanOrEqual(WATCH_LIFETIME_MS - 200);
      expect(o.afterMs).toBeLessThan(WATCH_LIFETIME_MS + 5_000);
    }
    // The slots are free again.
    const again = await failure((async () => {
      for await (const res of health.watch({ service: "" }, { timeoutMs: 500 })) expect(res.status).toBe(1);
    })());
    expect(again, "a new Watch after the others ended").toMatchObject({ code: 4 }); // our own deadline, not a refusal
  }, 30_000);

  it("a Watch whose grpc-timeout passes ends with the server's DEADLINE_EXCEEDED, not OK", async () => {
    // A raw HTTP/2 client keeps no deadline of its own, so the trailers are the server's answer.
    const session = http2.connect(server.url);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Watch",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": "300m",
      });
      stream.end(Buffer.from([0, 0, 0, 0, 0])); // one empty HealthCheckRequest (service "")
      stream.resume();
      const trailers = await new Promise<http2.IncomingHttpHeaders>((done, fail) => {
        stream.on("trailers", done);
        stream.on("error", fail);
        setTimeout(() => fail(new Error("no trailers within 5 s")), 5_000).unref();
      });
      expect(trailers["grpc-status"]).toBe("4");
    } finally {
      session.close();
    }
  });
});

describe(`a stalled HTTP/2 request is cut after REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms here, 30 s by default), as on HTTP/1.1`, () => {
  /** Opens an HTTP/2 POST, sends part of its body, never ends it; resolves with what happened. */
  async function stalled(path: string, contentType: string, part: Buffer) {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const started = Date.now();
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, authorization: `Bearer ${secret}` }, { endStream: false });
    stream.write(part);
    let headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader = {};
    let body = "";
    stream.on("response", (h) => (headers = h));
    stream.on("data", (d: Buffer) => (body += d.toString("latin1")));
    stream.on("error", () => {});
    const closedAfterMs = await Promise.race([new Promise<number>((r) => stream.on("close", () => r(Date.now() - started))), sleep(REQUEST_TIMEOUT_MS + 10_000).then(() => null)]);
    session.destroy();
    return { closedAfterMs, headers, body };
  }

  it("REST: the stream is answered 400 invalid_argument and closed", async () => {
    const r = await stalled("/v1/api-keys", "application/json", Buffer.from('{"name":"x'));
    console.log(`[transport] stalled HTTP/2 REST POST closed after ${r.closedAfterMs ?? "(still open)"} ms: ${r.headers[":status"]} ${r.body}`);
    expect(r.closedAfterMs, "stream still open").not.toBeNull();
    expect(r.closedAfterMs!).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 200);
    expect(r.closedAfterMs!).toBeLessThan(REQUEST_TIMEOUT_MS + 5_000);
    expect(r.headers[":status"]).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: "invalid_argument", message: "the request did not arrive in time" } });
  }, 30_000);

  it("gRPC: a half-sent message gets INVALID_ARGUMENT (trailers-only) and the stream is closed", async () => {
    const frame = Buffer.from([0, 0, 0, 0, 100, 1, 2, 3]); // a 100-byte message of which 3 bytes arrive
    const r = await stalled("/apikeys.v1.ApiKeyService/IssueKey", "application/grpc", frame);
    console.log(`[transport] stalled HTTP/2 gRPC call closed after ${r.closedAfterMs ?? "(still open)"} ms: grpc-status ${r.headers["grpc-status"]} ${r.headers["grpc-message"]}`);
    expect(r.closedAfterMs, "stream still open").not.toBeNull();
    expect(r.closedAfterMs!).toBeLessThan(REQUEST_TIMEOUT_MS + 5_000);
    expect(r.headers["grpc-status"]).toBe("3");
    expect(decodeURIComponent(String(r.headers["grpc-message"]))).toBe("the request did not arrive in time");
  }, 30_000);

  it("a request that finishes in time is served normally on the same kind of stream", async () => {
    const session = http2.connect(server.url);
    const stream = session.request({ ":method": "POST", ":path": "/v1/api-keys", "content-type": "application/json", authorization: `Bearer ${secret}` }, { endStream: false });
    stream.write('{"name":');
    await sleep(REQUEST_TIMEOUT_MS / 2);
    stream.end('"in-time"}');
    const status = await new Promise<number>((r) => stream.on("response", (h) => r(Number(h[":status"]))));
    stream.resume();
    session.close();
    expect(status).toBe(201);
  }, 30_000);
});

describe("the HTTP/1.1-vs-HTTP/2 sniffer waits until the bytes differ from the HTTP/2 preface or complete it", () => {
  /** Writes `pieces` on a raw socket `gapMs` apart; returns everything received until close (or 5 s). */
  async function dribble(pieces: Buffer[], gapMs: number, untilMs = 5_000): Promise<Buffer> {
    const socket = net.connect(server.port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => {});
    const closed = new Promise((r) => socket.on("close", r));
    await new Promise<void>((r) => socket.on("connect", () => r()));
    for (const p of pieces) {
      if (!socket.destroyed) socket.write(p);
      await sleep(gapMs);
    }
    await Promise.race([closed, sleep(untilMs)]);
    socket.destroy();
    return Buffer.concat(chunks);
  }

  it("HTTP/1.1 sent one byte at a time (P, O, S, T, …; 200 ms after the first) is answered as HTTP/1.1", async () => {
    for (const method of ["POST", "PUT", "PATCH"]) {
      const request = Buffer.from(`${method} /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      const pieces = [request.subarray(0, 1), ...[...request.subarray(1, 12)].map((b) => Buffer.from([b])), request.subarray(12)];
      const got = (await dribble(pieces, 30)).toString("latin1");
      expect(got.split("\r\n")[0], method).toBe("HTTP/1.1 200 OK");
      expect(got, method).toContain('{"status":"ok"}');
    }
    // The issue's reproduction: "P", then the rest 200 ms later.
    const request = Buffer.from("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    const got = (await dribble([request.subarray(0, 1), request.subarray(1)], 200)).toString("latin1");
    expect(got.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
  }, 30_000);

  it("the HTTP/2 preface in pieces, then a GET /healthz, is answered as HTTP/2", async () => {
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const frame = (type: number, flags: number, stream: number, payload = Buffer.alloc(0)) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(stream, 5);
      return Buffer.concat([h, payload]);
    };
    const hpack = (headers: Array<[string, string]>) =>
      Buffer.concat(headers.flatMap(([k, v]) => [Buffer.from([0x00, k.length]), Buffer.from(k), Buffer.from([v.length]), Buffer.from(v)]));
    const get = frame(1, 0x5 /* END_STREAM | END_HEADERS */, 1, hpack([[":method", "GET"], [":scheme", "http"], [":path", "/healthz"], [":authority", "x"]]));
    const pieces = [preface.subarray(0, 1), preface.subarray(1, 2), preface.subarray(2, 9), preface.subarray(9, 20), preface.subarray(20), frame(4, 0, 0), get];
    const got = await dribble(pieces, 150, 2_000);
    const types: number[] = [];
    for (let at = 0; at + 9 <= got.length; at += 9 + got.readUIntBE(at, 3)) types.push(got[at + 3]!);
    expect(got.subarray(0, 8).toString("latin1"), "HTTP/1.1 answer to an HTTP/2 preface").not.toMatch(/^HTTP\//);
    expect(types, "frame types received").toContain(1); // HEADERS of the answer
    expect(types, "GOAWAY").not.toContain(7);
    expect(got.toString("latin1")).toContain('{"status":"ok"}');
  }, 30_000);
});

// Answers are ended at the end of their turn, together (coalesced-end.ts; the deferral and its
// order are unit-tested in test/unit/coalesced-end.test.ts): here, that no answer is lost,
// mixed up or reordered when several finish in one turn.
describe("answers finished in the same turn each reach their own request, whole and in order", () => {
  /** Sends `raw` in one write; everything received until the server closes the connection (latin-1). */
  const exchange = async (raw: string) => (await rawExchange(server.port, Buffer.from(raw), 5_000)).text;
  /** Splits an HTTP/1.1 byte stream into responses (status and body, by Content-Length). */
  function responses(stream: string): Array<{ status: number; body: string; requestId: string | undefined }> {
    const out: Array<{ status: number; body: string; requestId: string | undefined }> = [];
    let rest = Buffer.from(stream, "latin1");
    while (rest.length > 0) {
      const end = rest.indexOf("\r\n\r\n");
      const head = rest.subarray(0, end).toString("latin1");
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      out.push({
        status: Number(head.split(" ")[1]),
        body: rest.subarray(end + 4, end + 4 + length).toString("utf8"),
        requestId: /x-request-id: (\S+)/i.exec(head)?.[1],
      });
      rest = rest.subarray(end + 4 + length);
    }
    return out;
  }
  const get = (key: string, path: string, last = false) =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n${last ? "Connection: close\r\n" : ""}\r\n`;

  it("requests pipelined on one connection get their own answers, in the order asked", async () => {
    const key = (await issueAsInternal(server, uuid(), { name: "pipelined" })).secret;
    const paths = ["/v1/api-keys", "/healthz", "/v1/nowhere", "/v1/api-keys?page_size=1", "/healthz"];
    const got = responses(await exchange(paths.map((p, i) => get(key, p, i === paths.length - 1)).join("")));
    expect(got.map((r) => r.status)).toEqual([200, 200, 404, 200, 200]);
    const [all, , missing, one] = got as [(typeof got)[0], (typeof got)[0], (typeof got)[0], (typeof got)[0]];
    expect((JSON.parse(all.body) as { data: unknown[] }).data).toHaveLength(1);
    expect(JSON.parse(missing.body)).toMatchObject({ error: { code: "not_found" } });
    expect(JSON.parse(one.body)).toMatchObject({ data: [{ name: "pipelined" }], total_size: 1 });
    expect(got[1]!.body).toBe('{"status":"ok"}');
    const ids = got.filter((r) => r.requestId !== undefined).map((r) => r.requestId);
    expect(new Set(ids).size, "a request id per answer").toBe(ids.length);
  });

  it("40 connections asking at once (each of its own customer) are all answered with their whole page", async () => {
    const keys = await Promise.all(Array.from({ length: 40 }, (_, i) => issueAsInternal(server, uuid(), { name: `turn-${i}` })));
    const pages = await Promise.all(keys.map((k) => exchange(get(k.secret, "/v1/api-keys", true))));
    pages.forEach((page, i) => {
      const [r] = responses(page);
      expect(r?.status).toBe(200);
      expect(JSON.parse(r!.body)).toMatchObject({ data: [{ name: `turn-${i}` }], total_size: 1 });
    });
  });
});

describe("the internal token counts only as authorization: Bearer, never in X-API-Key", () => {
  it("REST on PORT: X-API-Key: <INTERNAL_TOKEN> is 401; as Bearer it is the internal caller", async () => {
    const path = `/v1/api-keys?customer_id=${customer}`;
    const asHeader = await rest(server, "GET", path, { headers: { "x-api-key": server.internalToken } });
    expect(asHeader.status).toBe(401);
    expect(asHeader.body.error.code).toBe("unauthenticated");
    expect(JSON.stringify(asHeader.body)).not.toContain(server.internalToken);
    expect((await rest(server, "GET", path, { key: server.internalToken })).status).toBe(200);
  });

  it("every RPC transport on PORT and GRPC_PORT: internal and customer RPCs refuse it in x-api-key (UNAUTHENTICATED)", async () => {
    for (const client of allRpcClients(server)) {
      try {
        const charge = await client.call("chargeRateLimit", { customerId: customer, cost: 1 }, { "x-api-key": server.internalToken });
        expect(charge.ok ? "ok" : charge.code, `${client.name} ChargeRateLimit`).toBe(16);
        if (!charge.ok) expect(charge.message, client.name).toMatch(/only as authorization(:|%3A) Bearer/);
        const list = await client.call("listKeys", { customerId: customer }, { "x-api-key": server.internalToken });
        expect(list.ok ? "ok" : list.code, `${client.name} ListKeys`).toBe(16);
        const bearer = await client.call("chargeRateLimit", { customerId: customer, cost: 1 }, { authorization: `Bearer ${server.internalToken}` });
        expect(bearer.ok, `${client.name} as Bearer`).toBe(true);
      } finally {
        client.close();
      }
    }
  });
});

describe("a key-shaped X-Request-Id is replaced, never echoed, logged or stored", () => {
  it("REST, Connect, gRPC on PORT and GRPC_PORT: the response carries a fresh req_ id; the value is in no log line or audit event", async () => {
    // A key whose body (all but `zpk_live_`) is made only of characters a request id may hold.
    let body = "";
    for (let i = 0; i < 40 && !/^[A-Za-z0-9-]+$/.test(body); i++) body = (await issueAsInternal(server, customer, { name: `rid-${i}` })).secret.slice(9);
    expect(body).toMatch(/^[A-Za-z0-9-]{49}$/);
    const values = [body, `trace:${body}`, `${body}-x`, `zpk_live_${body}`];
    for (const value of values) {
      const issued = await rest(server, "POST", "/v1/api-keys", { key: secret, body: { name: "rid" }, headers: { "x-request-id": value } });
      expect(issued.status).toBe(201);
      const rid = issued.headers.get("x-request-id")!;
      expect(rid, value).toMatch(/^req_/);
      const failed = await rest(server, "GET", "/v1/api-keys", { key: issued.body.secret.replace(/.$/, (c: string) => (c === "A" ? "B" : "A")), headers: { "x-request-id": value } });
      expect(failed.headers.get("x-request-id"), value).toMatch(/^req_/);
      expect(JSON.stringify(failed.body)).not.toContain(value);
    }
    for (const client of allRpcClients(server)) {
      try {
        const r = await client.call("listKeys", {}, { authorization: `Bearer ${secret}`, "x-request-id": body });
        const rid = r.ok ? r.headers.get("x-request-id") : r.metadata.get("x-request-id");
        expect(rid, client.name).toMatch(/^req_/);
        const revoked = await client.call("revokeKey", { id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B" }, { authorization: `Bearer ${secret}`, "x-request-id": body });
        expect(revoked.ok, client.name).toBe(false);
      } finally {
        client.close();
      }
    }
    await sleep(500); // audit writes are batched (AUDIT_FLUSH_INTERVAL_MS), logs asynchronous
    const trail = await rest(server, "GET", `/v1/audit-events?customer_id=${customer}&page_size=100`, { key: server.internalToken });
    expect(trail.status).toBe(200);
    expect(trail.body.data.length).toBeGreaterThan(0);
    expect(JSON.stringify(trail.body), "audit events").not.toContain(body.slice(0, 43));
    expect(server.output(), "server log").not.toContain(body.slice(0, 43));
    // Sane ids are still echoed, long mixed-case ones too.
    for (const id of ["trace-0af7651916cd43dd8448eb211c80319c", "sec-grpcjsPORT-customerkeyoninternal-ak854m-QWERTYuiop1234567890"]) {
      const listed = await rest(server, "GET", "/v1/api-keys?page_size=1", { key: secret, headers: { "x-request-id": id } });
      expect(listed.headers.get("x-request-id")).toBe(id);
    }
  });
});

describe("a client that aborts mid-upload is logged at debug, not as an error", () => {
  const logLinesAfter = (mark: number) =>
    server
      .output()
      .slice(mark)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string });

  it("HTTP/1.1 REST and Connect uploads cut by the client, and an HTTP/2 stream reset mid-body: no warn/error line", async () => {
    const mark = server.output().length;
    for (const [path, type] of [["/v1/api-keys", "application/json"], ["/apikeys.v1.ApiKeyService/IssueKey", "application/json"]] as const) {
      const socket = net.connect(server.port, "127.0.0.1");
      socket.on("error", () => {});
      await new Promise<void>((r) => socket.on("connect", () => r()));
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: ${type}\r\nContent-Length: 5000\r\n\r\n{"name":"abc`);
      await sleep(300);
      socket.destroy();
    }
    for (const [path, type] of [["/v1/api-keys", "application/json"], ["/apikeys.v1.ApiKeyService/IssueKey", "application/grpc"]] as const) {
      const session = http2.connect(server.url);
      session.on("error", () => {});
      const stream = session.request({ ":method": "POST", ":path": path, "content-type": type, authorization: `Bearer ${secret}` }, { endStream: false });
      stream.on("error", () => {});
      stream.write(type === "application/grpc" ? Buffer.from([0, 0, 0, 0, 100, 1, 2]) : '{"name":"abc');
      await sleep(300);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await sleep(100);
      session.destroy();
    }
    await sleep(800);
    const lines = logLinesAfter(mark);
    const loud = lines.filter((l) => l.level >= 40);
    console.log(`[transport] 4 aborted uploads: ${lines.length} log lines (${lines.map((l) => `${l.level} ${l.msg}`).join("; ")})`);
    expect(loud.map((l) => `${l.level} ${l.msg}`), "warn/error lines for client aborts").toEqual([]);
    expect(lines.some((l) => l.level === 20 && /abort/i.test(l.msg)), "a debug line says the client aborted").toBe(true);
    expect(server.process.exitCode).toBeNull();
  }, 30_000);
});
