import * as http2 from "node:http2";
import * as net from "node:net";
import { ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
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
const WATCH_LIFETIME_MS = 3_000;

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
});
