import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { type RunningServer, startServer } from "../helpers/server.js";

let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

const ports = () => [
  ["PORT (connect-node)", server.port],
  ["GRPC_PORT (grpc-js)", server.grpcPort!],
] as const;

describe("gRPC health and reflection, for load balancers and grpcurl-style tools", () => {
  it("both ports answer grpc.health.v1 Check with SERVING for the server and the API, NOT_FOUND for others", async () => {
    for (const [name, port] of ports()) {
      const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
      expect((await health.check({ service: "" })).status, name).toBe(Status.SERVING);
      expect((await health.check({ service: "apikeys.v1.ApiKeyService" })).status, name).toBe(Status.SERVING);
      await expect(health.check({ service: "no.such.Service" }), name).rejects.toMatchObject({ code: 5 });
    }
  });

  it("both ports list the services and describe Authenticate through server reflection v1", async () => {
    for (const [name, port] of ports()) {
      const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
      async function* requests() {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "apikeys.v1.ApiKeyService.Authenticate" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "no.such.Symbol" } };
      }
      const answers = [];
      for await (const res of reflection.serverReflectionInfo(requests())) answers.push(res);
      expect(answers, name).toHaveLength(3);
      const [list, file, missing] = answers;
      expect(list!.messageResponse.case).toBe("listServicesResponse");
      const services = list!.messageResponse.case === "listServicesResponse" ? list!.messageResponse.value.service.map((s) => s.name) : [];
      expect(services, name).toEqual(expect.arrayContaining(["apikeys.v1.ApiKeyService", "grpc.health.v1.Health"]));
      expect(file!.messageResponse.case).toBe("fileDescriptorResponse");
      if (file!.messageResponse.case === "fileDescriptorResponse") {
        const protos = file!.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
        const own = protos.find((p) => p.name === "apikeys/v1/api_key_service.proto");
        expect(own?.service[0]?.method.map((m) => m.name), name).toContain("Authenticate");
        expect(protos.map((p) => p.name), name).toContain("google/protobuf/timestamp.proto");
      }
      expect(missing!.messageResponse.case, name).toBe("errorResponse");
    }
  });
});
