/**
 * `npm run bench -- in-process`: what one Authenticate costs our code on GRPC_PORT, layer by
 * layer, in one process with no socket (so no transport, and none of a shared machine's swings
 * between rounds): the request decode (protobuf-es), the grpc-js HandlerContext, the instrumented
 * service over the real domain (an in-memory store: a cached key does no store work), and the
 * answer's encoder. Each row is the mean of `BENCH_IN_PROCESS_CALLS` calls, over 3 measured rounds;
 * then one REST list (in-process-list.ts) over half as many.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ApiKeyService, AuthenticateRequestSchema } from "../gen/apikeys/v1/api_key_service_pb.js";
import { encodeAuthenticateResponse } from "../src/transport/grpc/authenticate-response-encoder.js";
import { grpcJsContext } from "../src/transport/grpc/grpc-js-context.js";
import { INTERNAL, unitService } from "../test/helpers/unit-service.js";
import { num } from "./lib/settings.js";
import { badChecksumKey, unknownKey } from "./lib/server.js";
import { inProcessList } from "./in-process-list.js";

export async function inProcess(): Promise<void> {
  const calls = num("BENCH_IN_PROCESS_CALLS", 200_000);
  // RATE_LIMIT_LEASE_MS as the server's default: a large bucket's charges come from the process's reserve.
  const u = unitService({ capacity: 1e9, refillPerSecond: 1e9, reserveMs: 250 });
  const { secret } = await u.issue("11111111-1111-4111-8111-111111111111");
  const method = ApiKeyService.method.authenticate;
  const path = `/${ApiKeyService.typeName}/${method.name}`;
  const metadata = new grpc.Metadata();
  metadata.set("authorization", INTERNAL);
  // What grpcJsContext reads of a grpc-js call: its metadata, deadline, peer and cancellation.
  const call = { metadata, getDeadline: () => Infinity, getPeer: () => "ipv4:127.0.0.1:5555", cancelled: false, on() {} } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
  const bytes = (key: string, charge = 0) => toBinary(AuthenticateRequestSchema, create(AuthenticateRequestSchema, { key, charge }));
  const whole = (b: Uint8Array) => async () => {
    const ctx = grpcJsContext(ApiKeyService, method, path, call, () => false);
    return encodeAuthenticateResponse(await u.impl.authenticate(fromBinary(AuthenticateRequestSchema, b), ctx));
  };
  const valid = bytes(secret);
  const rows: [string, () => unknown][] = [
    ["decode the request (protobuf-es)", () => fromBinary(AuthenticateRequestSchema, valid)],
    ["grpc-js HandlerContext", () => grpcJsContext(ApiKeyService, method, path, call, () => false)],
    ["valid, charge=0: context + service", () => u.impl.authenticate(fromBinary(AuthenticateRequestSchema, valid), grpcJsContext(ApiKeyService, method, path, call, () => false))],
    ["valid, charge=0: decode to encoded answer", whole(valid)],
    ["valid, charge=1: decode to encoded answer", whole(bytes(secret, 1))],
    ["unknown: decode to encoded answer", whole(bytes(unknownKey()))],
    ["malformed: decode to encoded answer", whole(bytes(badChecksumKey()))],
  ];
  process.stdout.write(`in-process cost per Authenticate on GRPC_PORT (${calls} calls a round, µs per call, rounds 1–3 after a warm-up round)\n\n`);
  for (const [name, fn] of rows) {
    const us: string[] = [];
    for (let round = 0; round < 4; round++) {
      const t = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) {
        const x = fn();
        if (x instanceof Promise) await x;
      }
      if (round > 0) us.push((Number(process.hrtime.bigint() - t) / 1e3 / calls).toFixed(2));
    }
    process.stdout.write(`  ${name.padEnd(44)} ${us.join("  ")}\n`);
  }
  await u.flush();
  const list = await inProcessList(calls / 2, 3);
  process.stdout.write(`\nin-process cost per GET /v1/api-keys on PORT (10 keys, ${list.bytes} bytes; fallback handler to the written answer, embedded store; µs per list, rounds 1–3 after a warm-up round)\n\n`);
  process.stdout.write(`  ${"list, answered from the SQLite list cache".padEnd(44)} ${list.us.map((x) => x.toFixed(2)).join("  ")}\n`);
}
