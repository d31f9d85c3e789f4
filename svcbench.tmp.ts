// In-process: the service's authenticate called directly with a grpc-js-like context (no network).
import { rmSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import pino from "pino";
import { loadConfig } from "./src/config/config.js";
import { createService } from "./src/app.js";
import { ApiKeyService, AuthenticateRequestSchema, AuthenticateResponseSchema, IssueKeyRequestSchema } from "./gen/apikeys/v1/api_key_service_pb.js";
import { grpcJsContext } from "./src/transport/grpc/grpc-js-context.js";
rmSync("/tmp/prof/svcdata", { recursive: true, force: true });
const cfg = loadConfig({ DATA_DIR: "/tmp/prof/svcdata", INTERNAL_TOKEN: "tok-0123456789abcdef", LOG_LEVEL: "warn", RATE_LIMIT_CAPACITY: "1000000", RATE_LIMIT_REFILL_PER_SEC: "1000000" } as any);
const { impl, domain } = await createService(cfg, pino({ level: "warn" }));
domain.start();
const method = ApiKeyService.method.authenticate;
const fakeCall = (md: grpc.Metadata) => ({ metadata: md, getPeer: () => "ipv4:127.0.0.1:5555", getDeadline: () => Infinity }) as any;
const md = new grpc.Metadata(); md.set("authorization", "Bearer tok-0123456789abcdef"); md.set("user-agent", "grpc-go/1.70.0");
const issued = await impl.issueKey(create(IssueKeyRequestSchema, { customerId: "6f1c2d3e-0000-4000-8000-000000000001", name: "x", scopes: ["a:b"] }), grpcJsContext(ApiKeyService, ApiKeyService.method.issueKey, "/x", fakeCall(md)) as any) as any;
const variants: Record<string, string> = { valid: issued.secret, malformed: "zpk_live_" + "A".repeat(49) };
const N = Number(process.env.N ?? 50000);
for (const [name, key] of Object.entries(variants)) for (const charge of name === "valid" ? [0, 1] : [0]) {
  const reqBytes = toBinary(AuthenticateRequestSchema, create(AuthenticateRequestSchema, { key, charge }));
  const one = async () => {
    const req = fromBinary(AuthenticateRequestSchema, reqBytes);
    const ctx = grpcJsContext(ApiKeyService, method, "/apikeys.v1.ApiKeyService/Authenticate", fakeCall(md));
    const out = await impl.authenticate(req, ctx as any);
    const outMd = new grpc.Metadata(); ctx.responseHeader.forEach((v, k) => outMd.set(k, v));
    return Buffer.from(toBinary(AuthenticateResponseSchema, create(AuthenticateResponseSchema, out as any)));
  };
  for (let i = 0; i < 5000; i++) await one();
  const s = performance.now();
  for (let i = 0; i < N; i++) await one();
  console.log(`${name} charge=${charge}: ${((performance.now() - s) * 1000 / N).toFixed(1)} µs/call (warm, in-process)`);
}
await domain.flush(); process.exit(0);
