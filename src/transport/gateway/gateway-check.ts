import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ApiKeyService,
  type AuthenticateResponse,
  AuthenticateRequestSchema,
  AuthenticateResponseSchema,
  DenialReason,
} from "../../../gen/apikeys/v1/api_key_service_pb.js";
import type { ErrorCode } from "../../domain/errors.js";
import { bearerToken, type Credentials } from "../../service/credentials.js";
import { kPeerAddress, kTrustedGateway, REQUEST_ID_HEADER, requestIdOf } from "../../service/call-context.js";
import { hasKeyInUrl, KEY_IN_URL_MESSAGE } from "../http/key-in-url.js";
import { LeanHandlerContext } from "../lean-handler-context.js";
import { PlainHeaders } from "../plain-headers.js";

/**
 * What a gateway asks about one request of its client, in either protocol (Envoy's CheckRequest,
 * a forward-auth subrequest): the original request target and headers, the route's requirements,
 * and the credential the gateway itself presents to zpk.
 */
export interface GatewayRequest {
  /** The original request target: path and query string, as in the request line. */
  uri: string;
  /** A header of the client's request (name lower-case), or undefined. */
  header(name: string): string | undefined;
  /** The names of the client's request headers, lower-case. */
  headerNames(): Iterable<string>;
  /** The route's requirements: Envoy's context_extensions or the auth URL's query parameters. */
  requirement(name: string): string | undefined;
  /** The client's address, as the gateway reports it. */
  clientIp: string | null;
  /** The gateway's request id (Envoy's x-request-id, nginx's $request_id), if any. */
  requestId: string | null;
  /** The gateway's own credential for zpk: `Bearer <INTERNAL_TOKEN>`, or null. */
  gatewayCredential: string | null;
  /** The address of the gateway's connection to zpk. */
  peer: string | null;
}

/** Headers the upstream receives about the key (README "Behind your gateway"). */
export const IDENTITY_HEADERS = [
  "x-zpk-customer-id",
  "x-zpk-key-id",
  "x-zpk-key-prefix",
  "x-zpk-scopes",
  "x-zpk-environment",
  "x-zpk-instance-id",
] as const;

/**
 * `x-zpk-scopes` of an unrestricted key. Parentheses are not allowed in scope names
 * (validation.ts), so this never reads as a list of real scopes, and a naive "does the list
 * contain X" check on it fails closed.
 */
export const UNRESTRICTED = "(unrestricted)";

export type GatewayDecision =
  | {
      allow: true;
      requestId: string;
      /** Identity headers for the upstream, all six; x-zpk-instance-id is "" for an unbound key. */
      upstream: [string, string][];
      /** Request headers to remove before the upstream: the credential, forged x-zpk-* headers. */
      remove: string[];
      /** Headers for the client's response: x-ratelimit-*. */
      client: [string, string][];
    }
  | {
      allow: false;
      requestId: string;
      status: number;
      code: ErrorCode;
      message: string;
      /** Response headers for the client (content-type, retry-after, x-ratelimit-*, ...). */
      headers: [string, string][];
      /** SPEC §3's error body. */
      body: string;
    };

export interface GatewayCheckOptions {
  /** The one ApiKeyService implementation: every decision goes through its `authenticate`. */
  impl: ServiceImpl<typeof ApiKeyService>;
  credentials: Credentials;
  /** AUTHZ_REQUIRE_INTERNAL_TOKEN: false trusts every caller of the gateway port (mesh-only). */
  requireInternalToken: boolean;
}

const AUTHENTICATE = ApiKeyService.method.authenticate;
const AUTHENTICATE_URL = `/${ApiKeyService.typeName}/${AUTHENTICATE.name}`;

/**
 * The gateway decision, shared by Envoy's `Check` (GRPC_PORT) and forward-auth `/check`
 * (AUTHZ_PORT). It does what only a gateway needs (the key in the original URL, which header
 * holds the key, the route's requirements, the headers for upstream and client) and leaves the
 * decision itself to the service's `Authenticate`, called in process with a HandlerContext of its
 * own: the same credential check, key checks, rate-limit charge, audit, metrics and log line as
 * an `Authenticate` RPC, and no copy of them.
 *
 * Throws a ConnectError when the gateway's own credential is refused (UNAUTHENTICATED) or storage
 * fails (UNAVAILABLE): those are not answers about the client's request.
 */
export function createGatewayCheck(opts: GatewayCheckOptions) {
  const { impl, credentials, requireInternalToken } = opts;

  return async function check(req: GatewayRequest, protocol: string): Promise<GatewayDecision> {
    const requestHeader = new PlainHeaders();
    if (req.gatewayCredential !== null) requestHeader.set("authorization", req.gatewayCredential);
    if (req.requestId) requestHeader.set(REQUEST_ID_HEADER, req.requestId);
    const values = createContextValues().set(kPeerAddress, req.peer);
    if (!requireInternalToken) values.set(kTrustedGateway, `gateway:${protocol}`);
    const ctx = new LeanHandlerContext({
      service: ApiKeyService,
      method: AUTHENTICATE,
      protocolName: protocol,
      requestMethod: "POST",
      url: AUTHENTICATE_URL,
      requestHeader,
      values,
    });
    // The gateway's credential first: a caller without it learns nothing, not even a refusal.
    if (requireInternalToken) {
      try {
        credentials.internal(ctx);
      } catch (err) {
        throw new ConnectError(
          `the gateway's credential is missing or wrong: ${err instanceof Error ? err.message : String(err)}`,
          Code.Unauthenticated,
        );
      }
    }
    // denial() takes the context, not a `deny` closure made here: tsx's keepNames would name that
    // closure with Object.defineProperty on every call (~0.6 µs).
    if (keyInUri(req.uri)) {
      return denial(ctx, 400, "key_in_url", KEY_IN_URL_MESSAGE);
    }
    const charge = parseCharge(req.requirement("charge"));
    if (charge === null) {
      return denial(ctx, 500, "internal", `the gateway's settings for this route are invalid: charge must be a whole number of tokens (got ${JSON.stringify(req.requirement("charge"))})`);
    }
    const presented = presentedKey(req);
    if (presented === null) {
      return denial(ctx, 401, "unauthenticated", "missing API key: send authorization: Bearer <key> or x-api-key: <key>", [["www-authenticate", "Bearer"]]);
    }
    const instanceHeader = req.requirement("instance_header")?.trim().toLowerCase();
    const instanceId = instanceHeader ? (req.header(instanceHeader) ?? "").trim() : (req.requirement("instance_id") ?? "").trim();
    const requiredScopes = (req.requirement("scopes") ?? req.requirement("required_scopes") ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");

    let res: AuthenticateResponse;
    try {
      // The implementation may answer with an init shape; create() returns a message as is.
      res = create(AuthenticateResponseSchema, await impl.authenticate(
        create(AuthenticateRequestSchema, {
          key: presented.key,
          instanceId,
          requiredScopes,
          charge,
          clientIp: req.clientIp ?? "",
          userAgent: req.header("user-agent") ?? "",
        }),
        ctx,
      ));
    } catch (err) {
      const ce = ConnectError.from(err);
      // A request that cannot be checked as sent (an instance id that is no UUID, a scope that
      // is no scope name): a refusal for the client, with the field named.
      if (ce.code === Code.InvalidArgument) return denial(ctx, 400, "invalid_argument", ce.rawMessage);
      throw ce;
    }

    const rateLimit: [string, string][] = res.rateLimit
      ? [
          ["x-ratelimit-limit", String(res.rateLimit.limit)],
          ["x-ratelimit-remaining", String(res.rateLimit.remaining)],
        ]
      : [];
    if (!res.valid) {
      switch (res.denialReason) {
        case DenialReason.EXPIRED:
          return denial(ctx, 401, "key_expired", "this API key has expired", [["www-authenticate", "Bearer"], ...rateLimit]);
        case DenialReason.REVOKED:
          return denial(ctx, 401, "key_revoked", "this API key has been revoked", [["www-authenticate", "Bearer"], ...rateLimit]);
        case DenialReason.DISABLED:
          return denial(ctx, 401, "key_disabled", "this API key is disabled", [["www-authenticate", "Bearer"], ...rateLimit]);
        case DenialReason.WRONG_INSTANCE:
          return denial(ctx, 403, "permission_denied", "this API key is bound to another instance", rateLimit);
        case DenialReason.MISSING_SCOPE:
          return denial(ctx, 403, "permission_denied", `this API key lacks a scope this route requires (${requiredScopes.join(", ")})`, rateLimit);
        case DenialReason.RATE_LIMITED:
          return denial(ctx, 429, "rate_limited", "rate limit exceeded: retry after the Retry-After delay", [
            ["retry-after", String(Math.max(1, res.rateLimit?.retryAfterSeconds ?? 1))],
            ...rateLimit,
          ]);
        default:
          // Malformed, unknown, and any reason added later (e.g. a disabled key): not authenticated.
          return denial(ctx, 401, "unauthenticated", "invalid API key", [["www-authenticate", "Bearer"], ...rateLimit]);
      }
    }

    const p = res.principal!;
    const upstream: [string, string][] = [
      ["x-zpk-customer-id", p.customerId],
      ["x-zpk-key-id", p.keyId],
      ["x-zpk-key-prefix", p.prefix],
      ["x-zpk-scopes", p.scopes.length === 0 ? UNRESTRICTED : p.scopes.join(",")],
      ["x-zpk-environment", p.environment],
      ["x-zpk-instance-id", p.instanceId],
    ];
    const remove = new Set<string>();
    if (req.requirement("keep_credential") !== "true") for (const h of presented.headers) remove.add(h);
    // Any other x-zpk-* header came from the client: the upstream must be able to trust the prefix.
    for (const name of req.headerNames()) {
      if (name.startsWith("x-zpk-") && !(IDENTITY_HEADERS as readonly string[]).includes(name)) remove.add(name);
    }
    return { allow: true, requestId: requestIdOf(ctx), upstream, remove: [...remove], client: rateLimit };
  };
}

export type GatewayCheck = ReturnType<typeof createGatewayCheck>;

/** SPEC §3's error body, as every zpk error is rendered. */
export function errorBodyText(code: ErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message }, request_id: requestId });
}

/** A refusal of the client's request; its request id is the call's (the gateway's, or one made now). */
function denial(ctx: HandlerContext, status: number, code: ErrorCode, message: string, extra: [string, string][] = []): GatewayDecision {
  const requestId = requestIdOf(ctx);
  return {
    allow: false,
    requestId,
    status,
    code,
    message,
    headers: [["content-type", "application/json"], [REQUEST_ID_HEADER, requestId], ...extra],
    body: errorBodyText(code, message, requestId),
  };
}

/** The key-in-URL rule of `PORT` (transport/http/key-in-url.ts), on the original request target. */
function keyInUri(uri: string): boolean {
  if (!uri.includes("?")) return false;
  let url: URL;
  try {
    url = new URL(uri.startsWith("/") ? uri : `/${uri}`, "http://gateway.invalid");
  } catch {
    return false;
  }
  return hasKeyInUrl(url);
}

/** `charge`: a decimal string, default 1 (so the gateway's traffic is rate-limited); 0 takes none. */
function parseCharge(raw: string | undefined): number | null {
  if (raw === undefined || raw.trim() === "") return 1;
  const s = raw.trim();
  if (!/^\d{1,9}$/.test(s)) return null;
  return Number(s);
}

/**
 * The customer's key and the headers that carried it: a Bearer token that looks like a key, else
 * `x-api-key`, else any Bearer token (which then fails as malformed). A non-Bearer authorization
 * (say Basic for the upstream) is left alone. x-api-key is always one of ours to remove.
 */
function presentedKey(req: GatewayRequest): { key: string; headers: string[] } | null {
  const auth = req.header("authorization");
  const bearer = auth === undefined ? null : bearerToken(auth);
  const apiKey = req.header("x-api-key")?.trim() || null;
  const extra = req.header("x-api-key") !== undefined ? ["x-api-key"] : [];
  if (bearer !== null && bearer.startsWith("zpk_")) return { key: bearer.slice(0, 256), headers: ["authorization", ...extra] };
  if (apiKey !== null) return { key: apiKey.slice(0, 256), headers: ["x-api-key"] };
  if (bearer !== null) return { key: bearer.slice(0, 256), headers: ["authorization", ...extra] };
  return null;
}
