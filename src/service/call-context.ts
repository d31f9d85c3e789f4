import { randomUUID } from "node:crypto";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { checksum } from "../domain/key-format.js";
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

export const REQUEST_ID_HEADER = "x-request-id";
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/**
 * A request id that looks like a key (a client pasting its key there, or a proxy copying one) is
 * never echoed, logged or stored: anything with `zpk_` in it (any case), or a key's body without
 * its prefix (43 base64url chars and their checksum, for either environment) anywhere in it. The
 * checksum makes the second test exact: ordinary ids (words, UUIDs, trace ids) are never taken for one.
 */
function keyShaped(id: string): boolean {
  if (/zpk_/i.test(id)) return true;
  for (const run of id.match(/[A-Za-z0-9_-]{49,}/g) ?? []) {
    for (let at = 0; at + 49 <= run.length; at++) {
      const random = run.slice(at, at + 43);
      const sum = run.slice(at + 43, at + 49);
      if (checksum(`zpk_live_${random}`) === sum || checksum(`zpk_test_${random}`) === sum) return true;
    }
  }
  return false;
}

/** A request id of our own, for a request that brought none we can echo. */
export const newRequestId = () => `req_${randomUUID()}`;

/** The call's request id once decided (requestIdOf); the response header is a separate choice. */
const kRequestId = createContextKey<string | null>(null, { description: "request id" });

/**
 * The call's request id, decided once and kept in the call's values: the caller's `x-request-id`
 * if it is sane and not key-shaped, else a new one. Deciding it echoes nothing: echoRequestId does.
 */
export function requestIdOf(ctx: HandlerContext): string {
  const decided = ctx.values.get(kRequestId);
  if (decided !== null) return decided;
  const id = requestIdFrom(ctx.requestHeader.get(REQUEST_ID_HEADER));
  ctx.values.set(kRequestId, id);
  return id;
}

/**
 * The request id for a caller's `x-request-id` value (null if it sent none): that value if it is
 * sane and not key-shaped, else a new one. For the few handlers outside the service (dashboard
 * sign-in) that record an id without a HandlerContext.
 */
export function requestIdFrom(incoming: string | null | undefined): string {
  return incoming && ACCEPTABLE_REQUEST_ID.test(incoming) && !keyShaped(incoming) ? incoming : newRequestId();
}

/** Whether the caller sent an `x-request-id` (echoed even where an id we made would not be). */
export const sentRequestId = (ctx: HandlerContext) => ctx.requestHeader.has(REQUEST_ID_HEADER);

/** Echoes the call's request id (deciding it if need be) as the `x-request-id` response header. */
export function echoRequestId(ctx: HandlerContext): void {
  ctx.responseHeader.set(REQUEST_ID_HEADER, requestIdOf(ctx));
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
