import { type ConnectRouter, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { ApiKeyService } from "../../../gen/apikeys/v1/api_key_service_pb.js";
import { kPeerAddress } from "../../service/call-context.js";
import type { NodeRequest } from "../http/json-response.js";

/** Connect, gRPC and gRPC-Web on `PORT`: the service implementation, as is. */
export const connectRoutes = (impl: ServiceImpl<typeof ApiKeyService>) => (router: ConnectRouter) =>
  router.service(ApiKeyService, impl);

/** The peer address every transport hands the service (see call-context.ts). */
export const nodeContextValues = (req: NodeRequest) =>
  createContextValues().set(kPeerAddress, req.socket?.remoteAddress ?? null);
