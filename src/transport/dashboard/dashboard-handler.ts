import type * as http from "node:http";
import type { Logger } from "pino";
import type { Authenticator } from "../../domain/authenticator.js";
import { ApiError } from "../../domain/errors.js";
import type { Sessions } from "../../domain/sessions.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "../../service/call-context.js";
import { SESSION_COOKIE, sessionCookie } from "../../service/session-credential.js";
import { normalizeIp, type SiteOriginConfig, siteOrigin } from "../../service/site-origin.js";
import { type NodeRequest, type NodeResponse, sendError, sendJson } from "../http/json-response.js";
import type { Asset, DashboardBundle } from "./bundle.js";
import { pageHtml, portalRefusedHtml } from "./page.js";

/**
 * Every dashboard response carries these: the page runs only our own script and stylesheet
 * (no inline script or style, nothing from elsewhere), cannot be framed, leaks no URL in a
 * Referer, and is never sniffed into another type.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

export interface DashboardDeps {
  /** The built page (built on first call, then the same promise). */
  bundle: () => Promise<DashboardBundle>;
  sessions: Sessions;
  authenticator: Authenticator;
  site: SiteOriginConfig;
  log: Logger;
}

const MAX_SIGN_IN_BODY = 4096;

/**
 * `/dashboard` on PORT: the page (one HTML shell, one script, one stylesheet, built in memory by
 * bundle.ts), and the three session endpoints the page needs besides the ApiKeyService itself —
 * sign in with a key, sign out, and "who am I". Everything else the page does goes through the
 * ApiKeyService over Connect with the session cookie (session-credential.ts).
 */
export function createDashboardHandler(deps: DashboardDeps) {
  const { sessions, site } = deps;

  return async function handleDashboard(req: NodeRequest, res: NodeResponse, url: URL): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const path = url.pathname;
    const method = req.method ?? "GET";
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
    };
    const here = siteOrigin(site, header, req.socket?.remoteAddress ?? null);

    if (path === "/dashboard") return redirect(res, 308, "/dashboard/");
    if (path === "/dashboard/" || path === "/dashboard/index.html") {
      if (method !== "GET" && method !== "HEAD") return notAllowed(res, "GET");
      return sendText(res, 200, "text/html; charset=utf-8", pageHtml());
    }
    if (path === "/dashboard/app.js" || path === "/dashboard/app.css") {
      const bundle = await deps.bundle();
      return sendAsset(req, res, path.endsWith(".js") ? bundle.js : bundle.css);
    }
    const portal = /^\/dashboard\/portal\/([^/]+)$/.exec(path);
    if (portal) {
      if (method !== "GET") return notAllowed(res, "GET");
      const started = await sessions.redeem(portal[1]!);
      if (!started) return sendText(res, 410, "text/html; charset=utf-8", portalRefusedHtml());
      setSessionCookie(res, started.token, started.record.expiresAt, here.secure, sessions.opts.ttlMs);
      return redirect(res, 303, "/dashboard/");
    }
    if (path.startsWith("/dashboard/api/")) {
      res.setHeader("cache-control", "no-store");
      if (method !== "POST") return notAllowed(res, "POST");
      // Same-origin fetches of our page only: a cross-site form or script cannot pass this.
      if (header("origin") !== here.origin) {
        return sendError(res, new ApiError("permission_denied", "cross-site request refused: the Origin is not this dashboard's"));
      }
      const token = sessionCookie(header("cookie"));
      switch (path) {
        case "/dashboard/api/sign-in":
          return signIn(req, res, here.secure, header);
        case "/dashboard/api/sign-out":
          if (token) await sessions.signOut(token);
          res.setHeader("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${here.secure ? "; Secure" : ""}`);
          return sendJson(res, 204, undefined);
        case "/dashboard/api/session": {
          const s = token ? await sessions.resolve(token) : null;
          if (!s) return sendError(res, new ApiError("unauthenticated", "not signed in"));
          const key = s.record.keyId !== null && s.caller.kind === "key" ? s.caller.key : null;
          return sendJson(res, 200, {
            kind: key ? "key" : "portal",
            customer_id: s.record.customerId,
            key: key ? { id: key.id, prefix: key.prefix, name: key.name } : null,
            scopes: s.caller.kind === "key" ? s.caller.key.scopes : [],
            instance_id: s.caller.kind === "key" ? s.caller.key.instanceId : null,
            return_url: s.record.returnUrl,
            expires_at: new Date(s.record.expiresAt).toISOString(),
          });
        }
      }
    }
    sendError(res, new ApiError("not_found", `no route for ${method} ${path}`));
  };

  async function signIn(req: NodeRequest, res: NodeResponse, secure: boolean, header: (n: string) => string | null) {
    if (!/^application\/json\b/i.test(header("content-type") ?? "")) {
      return sendError(res, new ApiError("invalid_argument", "send the key as JSON: {\"key\": \"zpk_…\"}"));
    }
    let key: unknown;
    try {
      key = (JSON.parse(await readSmallBody(req)) as { key?: unknown }).key;
    } catch (err) {
      return sendError(res, err instanceof ApiError ? err : new ApiError("invalid_argument", "malformed JSON in request body"));
    }
    if (typeof key !== "string" || key.trim() === "") return sendError(res, new ApiError("invalid_argument", "key is required"));
    const result = await deps.authenticator.authenticate(
      key.trim().length > 256 ? "" : key.trim(),
      { instanceId: null, requiredScopes: [], charge: 1, rateLimitAction: "rate_limit.exceeded" },
      {
        requestId: requestIdFrom(header(REQUEST_ID_HEADER)),
        ip: normalizeIp(req.socket?.remoteAddress ?? ""),
        userAgent: header("user-agent")?.slice(0, 256) ?? null,
      },
    );
    if (!result.valid) {
      const err =
        result.reason === "revoked" ? new ApiError("key_revoked", "this API key has been revoked")
        : result.reason === "expired" ? new ApiError("key_expired", "this API key has expired")
        : result.reason === "rate_limited"
          ? new ApiError("rate_limited", "rate limit exceeded: try again shortly", { "retry-after": String(result.rateLimit?.retryAfterSeconds ?? 1) })
          : new ApiError("unauthenticated", "invalid API key");
      return sendError(res, err);
    }
    const started = await sessions.signIn(result.key);
    setSessionCookie(res, started.token, started.record.expiresAt, secure, sessions.opts.ttlMs);
    return sendJson(res, 204, undefined);
  }
}

function setSessionCookie(res: NodeResponse, token: string, expiresAt: number, secure: boolean, ttlMs: number): void {
  const maxAge = Math.max(1, Math.floor(Math.min(ttlMs, expiresAt - Date.now()) / 1000));
  res.setHeader("set-cookie", `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? "; Secure" : ""}`);
}

function redirect(res: NodeResponse, status: number, location: string): void {
  (res as http.ServerResponse).writeHead(status, { location, "cache-control": "no-store", "content-length": "0" });
  res.end();
}

function notAllowed(res: NodeResponse, allow: string): void {
  sendError(res, new ApiError("method_not_allowed", `use ${allow}`), new Headers({ allow }));
}

function sendText(res: NodeResponse, status: number, type: string, text: string): void {
  const body = Buffer.from(text);
  (res as http.ServerResponse).writeHead(status, { "content-type": type, "content-length": String(body.length), "cache-control": "no-store" });
  res.end(body);
}

function sendAsset(req: NodeRequest, res: NodeResponse, a: Asset): void {
  const headers: Record<string, string> = { "content-type": a.type, etag: a.etag, "cache-control": "no-cache", vary: "accept-encoding" };
  if (req.headers["if-none-match"] === a.etag) {
    (res as http.ServerResponse).writeHead(304, headers);
    return void res.end();
  }
  const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const body = gzip ? a.gzip : a.body;
  if (gzip) headers["content-encoding"] = "gzip";
  headers["content-length"] = String(body.length);
  (res as http.ServerResponse).writeHead(200, headers);
  if (req.method === "HEAD") res.end();
  else res.end(body);
}

function readSmallBody(req: NodeRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_SIGN_IN_BODY) {
        req.off("data", onData);
        reject(new ApiError("payload_too_large", `request body exceeds ${MAX_SIGN_IN_BODY} bytes`, { connection: "close" }));
      } else chunks.push(c);
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}
