import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import type { WrkRequest } from "./load.js";

/**
 * The requests the bench's rows send, made in one place for `npm run bench` (run.ts) and its A/B
 * (ab.ts), so both measure the very same call.
 */

/** Authenticate's path on GRPC_PORT (and PORT's gRPC), for h2load. */
export const AUTHENTICATE_PATH = `/${ApiKeyService.typeName}/${ApiKeyService.method.authenticate.name}`;

/** `GET /v1/api-keys` at `baseUrl` with the customer's `key`: our list, or the bare server's minimal list. */
export const listRequest = (baseUrl: string, key: string): WrkRequest => ({ url: `${baseUrl}/v1/api-keys`, authorization: `Bearer ${key}` });

/** AUTHZ_PORT's forward-auth check of `key`, as nginx's auth_request sends it for `GET /orders`. */
export const forwardAuthRequest = (authzPort: number, key: string, internalToken: string, charge: string): WrkRequest => ({
  url: `http://127.0.0.1:${authzPort}/check?charge=${charge}`,
  authorization: `Bearer ${key}`,
  headers: { "Proxy-Authorization": `Bearer ${internalToken}`, "X-Original-URI": "/orders", "X-Original-Method": "GET" },
});
