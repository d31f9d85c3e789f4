import type { ConnectRouter } from "@connectrpc/connect";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { createReflection } from "../reflection.js";

/** gRPC server reflection v1 on `PORT` (connect-node). */
export function reflectionRoutes() {
  const answer = createReflection();
  return (router: ConnectRouter) =>
    router.service(ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) yield answer(req);
      },
    });
}
