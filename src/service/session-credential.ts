import type { HandlerContext } from "@connectrpc/connect";
import { ApiError } from "../domain/errors.js";
import type { RateLimiter } from "../domain/rate-limit/rate-limiter.js";
import type { Sessions } from "../domain/sessions.js";
import type { Caller } from "../domain/types.js";
import { kPeerAddress } from "./call-context.js";
import { type SiteOriginConfig, siteOrigin } from "./site-origin.js";

/** The dashboard's session cookie. */
export const SESSION_COOKIE = "zpk_session";

/** The session token in a Cookie header, if any. */
export function sessionCookie(header: string | null | undefined): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

/**
 * The dashboard's credential on the ApiKeyService: a session cookie instead of a key, accepted
 * only on what a same-origin page of ours sends, so a cross-site request carrying the cookie is
 * refused even where SameSite=Strict is not honoured: the Connect protocol (POST with
 * `connect-protocol-version: 1`, a header no cross-site form or simple request can set without a
 * CORS preflight, which we never answer) and an `Origin` equal to our own. The session then acts
 * exactly as its key (or portal grant): same scopes, binding and rate limit as any other call.
 */
export class SessionCredential {
  constructor(
    private readonly sessions: Sessions,
    private readonly rateLimiter: RateLimiter,
    private readonly site: SiteOriginConfig,
  ) {}

  async caller(ctx: HandlerContext, token: string): Promise<Caller> {
    const h = ctx.requestHeader;
    if (ctx.protocolName !== "connect" || ctx.requestMethod !== "POST" || h.get("connect-protocol-version") !== "1") {
      throw new ApiError("unauthenticated", "a dashboard session is accepted only on Connect POST requests from the dashboard; send an API key instead");
    }
    const expected = siteOrigin(this.site, (n) => h.get(n), ctx.values.get(kPeerAddress)).origin;
    if (h.get("origin") !== expected) {
      throw new ApiError("permission_denied", "cross-site request refused: the Origin is not this dashboard's");
    }
    const session = await this.sessions.resolve(token);
    if (!session) throw new ApiError("unauthenticated", "the dashboard session has ended: sign in again");
    const d = await this.rateLimiter.charge(session.record.customerId, 1);
    ctx.responseHeader.set("x-ratelimit-limit", String(d.limit));
    ctx.responseHeader.set("x-ratelimit-remaining", String(d.remaining));
    if (!d.allowed) {
      throw new ApiError("rate_limited", "rate limit exceeded: retry after the Retry-After delay", { "retry-after": String(d.retryAfterSeconds) });
    }
    return session.caller;
  }
}
