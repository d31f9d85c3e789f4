import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../helpers/server.js";

/**
 * SPEC §3: never a 500 for a client mistake. A request body that is not a valid protobuf message
 * (or not valid JSON) is INVALID_ARGUMENT in each protocol's own error form, on PORT
 * (connect-node: Connect, gRPC, gRPC-Web) as on GRPC_PORT (grpc-js). connect-es alone answers an
 * unparsable binary body with INTERNAL / HTTP 500 "parse binary: …".
 */
let server: RunningServer;
let raw: Record<"PORT" | "GRPC_PORT", grpc.Client>;
beforeAll(async () => {
  server = await startServer();
  raw = {
    PORT: new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()),
    GRPC_PORT: new grpc.Client(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure()),
  };
});
afterAll(async () => {
  raw?.PORT.close();
  raw?.GRPC_PORT.close();
  await server?.stop();
});

/** Not protobuf: each is refused by the binary parser (length past the end, illegal tag, a varint that never ends). */
const GARBAGE: Array<[string, Buffer]> = [
  ["a length past the end of the body", Buffer.from([0x0a, 0xff, 0x01, 0x41])],
  ["an illegal tag", Buffer.from([0x07])],
  ["a varint that never ends", Buffer.from([0x08, 0xff, 0xff, 0xff])],
];
const GET_KEY = "/apikeys.v1.ApiKeyService/GetKey";
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";
const auth = () => `Bearer ${server.internalToken}`;

/** A gRPC-Web (or gRPC) message frame: flag byte, 4-byte length, bytes. */
const frame = (bytes: Buffer, flags = 0) => {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
};

/** The trailer frame of a gRPC-Web response body, as header name -> value. */
function grpcWebTrailer(body: Buffer): Record<string, string> {
  let at = 0;
  while (at + 5 <= body.length) {
    const len = body.readUInt32BE(at + 1);
    if (body[at]! & 0x80) {
      const text = body.subarray(at + 5, at + 5 + len).toString("latin1");
      return Object.fromEntries(text.split("\r\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
    }
    at += 5 + len;
  }
  return {};
}

/** POSTs `body` to `path` on PORT. */
const post = (path: string, headers: Record<string, string>, body: Buffer | string) =>
  fetch(`${server.url}${path}`, { method: "POST", headers, body: typeof body === "string" ? body : new Uint8Array(body) });

function grpcRaw(target: "PORT" | "GRPC_PORT", path: string, bytes: Buffer): Promise<grpc.ServiceError | null> {
  const md = new grpc.Metadata();
  md.set("authorization", auth());
  return new Promise((done) =>
    raw[target].makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, md, { deadline: Date.now() + 10_000 }, (err) => done(err)),
  );
}

describe.each(GARBAGE)("a body that is not protobuf (%s)", (_what, bytes) => {
  it("Connect (application/proto) on PORT: HTTP 400 invalid_argument, not 500 internal", async () => {
    const res = await post(GET_KEY, { "content-type": "application/proto", "connect-protocol-version": "1", authorization: auth() }, bytes);
    const body = await res.json();
    expect({ status: res.status, code: body.code }).toEqual({ status: 400, code: "invalid_argument" });
    expect(body.message).toMatch(/^malformed protobuf request: /);
  });

  it("gRPC on PORT: INVALID_ARGUMENT, as on GRPC_PORT", async () => {
    const port = await grpcRaw("PORT", GET_KEY, bytes);
    const grpcPort = await grpcRaw("GRPC_PORT", GET_KEY, bytes);
    expect(port?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(grpcPort?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(port?.details).toMatch(/^malformed protobuf request: /);
  });

  it("gRPC-Web on PORT: grpc-status 3 in the trailer", async () => {
    const res = await post(GET_KEY, { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: auth() }, frame(bytes));
    expect(res.status).toBe(200);
    const trailer = grpcWebTrailer(Buffer.from(await res.arrayBuffer()));
    expect(trailer["grpc-status"]).toBe("3");
    expect(decodeURIComponent(trailer["grpc-message"] ?? "")).toMatch(/^malformed protobuf request: /);
  });

  it("the health service on PORT too (gRPC)", async () => {
    expect((await grpcRaw("PORT", HEALTH_CHECK, bytes))?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe("JSON bodies over Connect (application/json) on PORT", () => {
  it.each([
    ["not JSON", "{"],
    ["a field of the wrong type", '{"id": 5}'],
    ["a JSON array", "[1]"],
    ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])],
  ])("%s is HTTP 400 invalid_argument", async (_what, body) => {
    const res = await fetch(`${server.url}${GET_KEY}`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", authorization: auth() },
      body,
    });
    expect({ status: res.status, code: (await res.json()).code }).toEqual({ status: 400, code: "invalid_argument" });
  });
});

describe("what still works", () => {
  it("a valid protobuf body over Connect is answered by the service (an empty id: 400 from our validation)", async () => {
    const res = await post(GET_KEY, { "content-type": "application/proto", "connect-protocol-version": "1", authorization: auth() }, Buffer.alloc(0));
    const body = await res.json();
    expect(res.status).toBe(400);
    expect(body.message).not.toMatch(/protobuf/);
  });

  it("an internal error that is not a parse error keeps its code (gRPC-Web health check of an unknown service: NOT_FOUND)", async () => {
    // grpc.health.v1.HealthCheckRequest{service: "nope"}
    const res = await post(HEALTH_CHECK, { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, frame(Buffer.from([0x0a, 0x04, ...Buffer.from("nope")])));
    expect(grpcWebTrailer(Buffer.from(await res.arrayBuffer()))["grpc-status"]).toBe("5");
  });
});
