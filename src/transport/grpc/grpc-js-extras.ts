import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { HEALTH_SERVICES, type HealthState } from "../health-state.js";

const PROTO_DIR = fileURLToPath(new URL("../../../proto", import.meta.url));

/**
 * `grpc.health.v1.Health` (grpc-health-check) and server reflection v1/v1alpha (@grpc/reflection)
 * on the grpc-js server, so load balancers and grpcurl-style tools work on `GRPC_PORT`.
 */
export function addGrpcJsHealthAndReflection(server: grpc.Server, health: HealthState): void {
  const status = () => (health.isServing ? "SERVING" : "NOT_SERVING");
  const impl = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, status()])));
  health.watch(() => {
    for (const s of HEALTH_SERVICES) impl.setStatus(s, status());
  });
  impl.addToServer(server);
  const definition = loadSync(["apikeys/v1/api_key_service.proto", "grpc/health/v1/health.proto"], {
    includeDirs: [PROTO_DIR],
  });
  new ReflectionService(definition).addToServer(server);
}
