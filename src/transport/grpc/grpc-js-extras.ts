import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { HEALTH_SERVICES, type HealthState } from "../health-state.js";
import { file_envoy_service_auth_v3_external_auth } from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { createReflection } from "../reflection.js";

/**
 * `grpc.health.v1.Health` (the grpc-health-check package) and server reflection v1 (the same
 * transport-neutral answers as on `PORT`) on the grpc-js server, so load balancers and
 * grpcurl-style tools work on `GRPC_PORT`.
 */
export function addGrpcJsHealthAndReflection(server: grpc.Server, health: HealthState): void {
  const status = () => (health.isServing ? "SERVING" : "NOT_SERVING");
  const impl = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, status()])));
  health.watch(() => {
    for (const s of HEALTH_SERVICES) impl.setStatus(s, status());
  });
  impl.addToServer(server);

  // GRPC_PORT also serves Envoy's Authorization (transport/envoy): reflection lists it here only.
  const answer = createReflection([file_envoy_service_auth_v3_external_auth]);
  server.addService(
    {
      serverReflectionInfo: {
        path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: ServerReflectionRequest) => Buffer.from(toBinary(ServerReflectionRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(ServerReflectionRequestSchema, b),
        responseSerialize: (m: ServerReflectionResponse) => Buffer.from(toBinary(ServerReflectionResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
      },
    },
    {
      serverReflectionInfo: (call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) => {
        call.on("data", (req: ServerReflectionRequest) => call.write(create(ServerReflectionResponseSchema, answer(req))));
        call.on("end", () => call.end());
        call.on("error", () => call.end());
      },
    },
  );
}
