/**
 * The "bare grpc-js limit" of `npm run bench` (issue 17): a plain `@grpc/grpc-js` Server with ONE
 * unary method that answers fixed, pre-encoded bytes — no protobuf decode (requestDeserialize is
 * the identity), no encode (responseSerialize returns a constant Buffer), no context, no metadata,
 * no metrics, no logging. What is left is Node's HTTP/2 and grpc-js's per-call machinery: the most
 * a Node gRPC server can answer on this machine, which Authenticate is compared with.
 *
 * Beside it, at BARE_MINIMAL_PATH, the **minimal Authenticate**: the least any correct Authenticate
 * does on this transport, and nothing else. It checks the caller's `authorization` metadata against
 * the internal token in constant time, decodes the AuthenticateRequest (protobuf-es), hashes the
 * key (SHA-256, our digestKey) and looks the digest up in a Map, then answers the real server's pre-encoded valid
 * answer on a hit and a fixed UNKNOWN denial on a miss. No validation of the other fields, no
 * expiry, revocation, scopes, usage, audit, metrics or context: a floor for our Authenticate on the
 * same transport (no target; bench/README.md).
 *
 * Started by the bench as a separate process (`node --import tsx bench/lib/bare-grpc-server.ts`):
 *
 *   BARE_PORT          port to listen on (127.0.0.1)
 *   BARE_PATH          the method's path, e.g. /apikeys.v1.ApiKeyService/Authenticate, so the very
 *                      same h2load command (request bytes and headers) drives it
 *   BARE_RESPONSE_HEX  the response message bytes (the bench passes the real server's answer to
 *                      the same request, so both send the same number of bytes)
 *   BARE_WORKERS       > 1: node:cluster with that many workers sharing the port, as WORKERS does
 *   BARE_MINIMAL_PATH  the minimal Authenticate's path
 *   BARE_AUTHORIZATION the `authorization` value the minimal Authenticate accepts (Bearer <token>)
 *   BARE_KEY_DIGEST    the SHA-256 (hex) of the one key the minimal Authenticate knows
 *   BARE_HTTP_PORT     if set, the bare HTTP/1.1 server on this port too (bench/lib/bare-http.ts:
 *                      GET /healthz and the minimal list of BARE_KEY_DIGEST's customer)
 *   BARE_PAGE_HEX      the minimal list's page (the real server's answer to the same request)
 *   BARE_DIR           a directory for the minimal list's SQLite file
 *   BARE_MONGODB_URI, BARE_MONGODB_DB, BARE_CUSTOMER_ID
 *                      the MongoDB pass: the minimal list's round trip goes to the real server's
 *                      database, for this customer's keys (bench/lib/bare-http.ts)
 *
 * Server options are the ones src/transport/grpc/grpc-js-server.ts sets (channelz off, 256 streams
 * per connection), so the limit is that of the same transport configuration. Each worker prints
 * `bare-grpc ready <pid>` once it listens (on both ports); SIGTERM stops it (and, in the primary,
 * the workers).
 */
import cluster from "node:cluster";
import { timingSafeEqual } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type AuthenticateRequest, AuthenticateRequestSchema, AuthenticateResponseSchema, DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { digestKey } from "../../src/domain/key-format.js";
import { listenBareHttp } from "./bare-http.js";

/** The minimal Authenticate's answer to a key it does not know, encoded once. */
const UNKNOWN_ANSWER = Buffer.from(toBinary(AuthenticateResponseSchema, create(AuthenticateResponseSchema, { valid: false, denialReason: DenialReason.UNKNOWN })));

const port = Number(process.env.BARE_PORT);
const path = process.env.BARE_PATH ?? "/bare.v1.Bare/Call";
const RESPONSE = Buffer.from(process.env.BARE_RESPONSE_HEX ?? "", "hex");
const workers = Number(process.env.BARE_WORKERS ?? "1");
const minimalPath = process.env.BARE_MINIMAL_PATH ?? "";
const authorization = Buffer.from(process.env.BARE_AUTHORIZATION ?? "");
const known = new Map([[process.env.BARE_KEY_DIGEST ?? "", RESPONSE]]);
if (!Number.isInteger(port) || port <= 0) throw new Error("BARE_PORT must be a port number");

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  let stopping = false;
  cluster.on("exit", () => {
    if (!stopping) {
      stopping = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
    }
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
  process.on("SIGTERM", () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
  });
} else {
  const server = new grpc.Server({ "grpc.max_concurrent_streams": 256, "grpc.enable_channelz": 0 });
  const identity = (b: Buffer) => b;
  const constant = () => RESPONSE;
  server.register(path, (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, RESPONSE), constant, identity, "unary");
  const minimal = (call: grpc.ServerUnaryCall<AuthenticateRequest, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    const presented = call.metadata.get("authorization")[0];
    const given = Buffer.from(typeof presented === "string" ? presented : "");
    if (authorization.length === 0 || given.length !== authorization.length || !timingSafeEqual(given, authorization)) {
      callback({ code: grpc.status.UNAUTHENTICATED, details: "internal credential required" });
      return;
    }
    callback(null, known.get(digestKey(call.request.key)) ?? UNKNOWN_ANSWER);
  };
  if (minimalPath) server.register(minimalPath, minimal, identity, (b: Buffer) => fromBinary(AuthenticateRequestSchema, b), "unary");
  const httpPort = Number(process.env.BARE_HTTP_PORT ?? "0");
  let listening = httpPort > 0 ? 2 : 1;
  const ready = () => --listening === 0 && process.stdout.write(`bare-grpc ready ${process.pid}\n`);
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      process.stderr.write(`bare-grpc: ${err.message}\n`);
      process.exit(1);
    }
    ready();
  });
  if (httpPort > 0) {
    const page = Buffer.from(process.env.BARE_PAGE_HEX ?? "", "hex");
    const { BARE_MONGODB_URI: uri, BARE_MONGODB_DB: db, BARE_CUSTOMER_ID: customerId } = process.env;
    const mongo = uri && db && customerId ? { uri, db, customerId } : undefined;
    listenBareHttp({ port: httpPort, keyDigest: process.env.BARE_KEY_DIGEST ?? "", page, dir: process.env.BARE_DIR ?? ".", ...(mongo ? { mongo } : {}) }, ready);
  }
  process.on("SIGTERM", () => {
    server.forceShutdown();
    process.exit(0);
  });
}
