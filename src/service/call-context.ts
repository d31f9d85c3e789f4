import { randomUUID } from "node:crypto";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { RequestOrigin } from "../domain/types.js";

/**
 * What a transport adapter tells the service about a call beyond its headers: the peer address.
 * Every adapter (connect-node, REST, grpc-js) sets it in the HandlerContext's values.
 */
export const kPeerAddress = createContextKey<string | null>(null, { description: "peer address" });

/** The calling key's prefix (never the key), set once the caller is known, for the call's log line. */
export const kCallerPrefix = createContextKey<string | null>(null, { description: "caller key prefix" });

/**
 * Set by a gateway transport (Envoy Check, forward-auth /check) when the operator turned off the
 * internal credential for it (AUTHZ_REQUIRE_INTERNAL_TOKEN=false: a port only the mesh reaches):
 * the name its calls count as an internal caller under. Only server-side adapters set values.
 */
export const kTrustedGateway = createContextKey<string | null>(null, { description: "trusted gateway caller" });

const REQUEST_ID_HEADER = "x-request-id";
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A request id of our own, for a request that brought none we can echo. */
export const newRequestId = () => `req_${randomUUID()}`;

/**
 * The call's request id, decided once: the caller's `x-request-id` if it is sane, else a new
 * one. It is echoed as a response header on every transport.
 */
export function requestIdOf(ctx: HandlerContext): string {
  const decided = ctx.responseHeader.get(REQUEST_ID_HEADER);
  if (decided) return decided;
  const incoming = ctx.requestHeader.get(REQUEST_ID_HEADER);
  const id = incoming && ACCEPTABLE_REQUEST_ID.test(incoming) ? incoming : newRequestId();
  ctx.responseHeader.set(REQUEST_ID_HEADER, id);
  return id;
}

/** Request id, client ip and user agent, as recorded in the audit trail. */
export function originOf(ctx: HandlerContext): RequestOrigin {
  return {
    requestId: requestIdOf(ctx),
    ip: normalizeIp(ctx.values.get(kPeerAddress)),
    userAgent: ctx.requestHeader.get("user-agent")?.slice(0, 256) ?? null,
  };
}

const normalizeIp = (ip: string | null) => (ip?.startsWith("::ffff:") ? ip.slice(7) : ip);
