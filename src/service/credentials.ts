import { timingSafeEqual } from "node:crypto";
import type { HandlerContext } from "@connectrpc/connect";
import type { Authenticator } from "../domain/authenticator.js";
import { forbidden, keyExpired, keyRevoked, keyDisabled, rateLimited, unauthenticated } from "../domain/errors.js";
import type { Caller, RateLimitDecision } from "../domain/types.js";
import { kCallerPrefix, kTrustedGateway, originOf } from "./call-context.js";
import { type SessionCredential, sessionCookie } from "./session-credential.js";

/**
 * Who is calling, decided once per call for every transport: the internal credential
 * (`authorization: Bearer <INTERNAL_TOKEN>`, compared in constant time) or a customer key
 * (`authorization: Bearer zpk_…` or `x-api-key: zpk_…`; the internal credential never in x-api-key), which is authenticated and charged one
 * token from its customer's bucket (SPEC §3, §6), with the bucket's state in `x-ratelimit-*`.
 */
export class Credentials {
  private readonly internalToken: Buffer | null;

  constructor(
    internalToken: string | null,
    private readonly authenticator: Authenticator,
    /** The dashboard's session cookie, used only when no key or token is presented. */
    private readonly sessions: SessionCredential | null = null,
  ) {
    this.internalToken = internalToken ? Buffer.from(internalToken) : null;
  }

  /** For RPCs any caller may use: a customer key or the internal credential. */
  async caller(ctx: HandlerContext): Promise<Caller> {
    if (this.sessions && !ctx.requestHeader.has("authorization") && !ctx.requestHeader.has("x-api-key")) {
      const token = sessionCookie(ctx.requestHeader.get("cookie"));
      if (token !== null) return this.sessions.caller(ctx, token);
    }
    const { presented, bearer } = presentedCredential(ctx);
    // INTERNAL_TOKEN never starts with zpk_ (config.ts), so a customer key (whose prefix is
    // public) is not compared with it. It counts only as `authorization: Bearer` (SPEC §4): in
    // x-api-key, which proxies and logs treat as a customer key, it is just an invalid key.
    if (bearer && !presented.startsWith(KEY_MARK) && this.isInternal(presented)) return { kind: "internal", name: internalName(ctx) };
    const result = await this.authenticator.authenticate(
      presented,
      { instanceId: null, requiredScopes: [], charge: 1, rateLimitAction: "rate_limit.exceeded" },
      () => originOf(ctx),
    );
    if (result.rateLimit) setRateLimitHeaders(ctx, result.rateLimit);
    if (result.key) ctx.values.set(kCallerPrefix, result.key.prefix);
    if (result.valid) return { kind: "key", key: result.key };
    switch (result.reason) {
      case "expired":
        throw keyExpired();
      case "revoked":
        throw keyRevoked();
      case "disabled":
        throw keyDisabled();
      case "rate_limited":
        throw rateLimited({
          "retry-after": String(result.rateLimit?.retryAfterSeconds ?? 1),
          ...rateLimitHeaders(result.rateLimit),
        });
      default:
        throw unauthenticated("invalid API key");
    }
  }

  /** For internal RPCs: only the internal credential; a customer key is refused outright. */
  internal(ctx: HandlerContext): Caller {
    const gateway = ctx.values.get(kTrustedGateway);
    if (gateway !== null) return { kind: "internal", name: gateway };
    if (this.internalToken === null) {
      throw unauthenticated(
        "internal RPCs are disabled: start the service with INTERNAL_TOKEN set and send authorization: Bearer <INTERNAL_TOKEN>",
      );
    }
    const { presented, bearer } = presentedCredential(ctx);
    if (bearer && this.isInternal(presented)) return { kind: "internal", name: internalName(ctx) };
    if (presented.startsWith(KEY_MARK)) throw forbidden("this RPC is for internal services; customer keys cannot call it");
    if (!bearer) throw unauthenticated("internal RPCs take the internal credential only as authorization: Bearer <INTERNAL_TOKEN>");
    throw unauthenticated("invalid internal credential");
  }

  /**
   * Constant time in the content: timingSafeEqual over the bytes. A presented credential of
   * another length is compared with the token itself and refused, so only the length, which is
   * not the secret, can show in the timing (as with Go's subtle.ConstantTimeCompare). This runs on
   * every internal RPC, and hashing both sides to hide the length too cost ~2.5 µs a call.
   */
  private isInternal(presented: string): boolean {
    const token = this.internalToken;
    if (token === null) return false;
    const bytes = Buffer.from(presented);
    const same = bytes.length === token.length;
    return timingSafeEqual(same ? bytes : token, token) && same;
  }
}

/** How every customer key starts (SPEC §2). */
const KEY_MARK = "zpk_";

/** The token of an `authorization: Bearer <token>` value, or null if the value is not of that form. */
export function bearerToken(authorization: string): string | null {
  return BEARER.exec(authorization)?.[1] ?? null;
}

const BEARER = /^Bearer[ ]+(\S+)\s*$/i;

/** The credential sent, and whether it came as `authorization: Bearer` (else `x-api-key`). */
function presentedCredential(ctx: HandlerContext): { presented: string; bearer: boolean } {
  const auth = ctx.requestHeader.get("authorization");
  if (auth !== null) {
    const token = bearerToken(auth);
    if (token !== null) return { presented: token, bearer: true };
    throw unauthenticated("the authorization header must be: Bearer <key>");
  }
  const apiKey = ctx.requestHeader.get("x-api-key")?.trim();
  if (apiKey) return { presented: apiKey, bearer: false };
  throw unauthenticated("missing API key: send authorization: Bearer <key>");
}

/** The internal caller's self-declared name (`x-caller`), for the audit actor. */
const internalName = (ctx: HandlerContext) => {
  const name = ctx.requestHeader.get("x-caller");
  return name && /^[A-Za-z0-9._-]{1,64}$/.test(name) ? name : "internal";
};

/** The bucket's state after a charge, as `x-ratelimit-*` headers (SPEC §6). */
function rateLimitHeaders(d: RateLimitDecision | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (d) forEachRateLimitHeader(d, (k, v) => (out[k] = v));
  return out;
}

function setRateLimitHeaders(ctx: HandlerContext, d: RateLimitDecision): void {
  forEachRateLimitHeader(d, (k, v) => ctx.responseHeader.set(k, v));
}

/** One place names the headers; a success sets them on its context with no object in between. */
function forEachRateLimitHeader(d: RateLimitDecision, put: (name: string, value: string) => void): void {
  put("x-ratelimit-limit", String(d.limit));
  put("x-ratelimit-remaining", String(d.remaining));
}
