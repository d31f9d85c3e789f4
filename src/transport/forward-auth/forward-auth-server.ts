import * as http from "node:http";
import { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ErrorCode } from "../../domain/errors.js";
import { newRequestId, REQUEST_ID_HEADER } from "../../service/call-context.js";
import { coalescedEnd } from "../http/coalesced-end.js";
import { errorBodyText, type GatewayCheck, type GatewayDecision, type GatewayRequest } from "../gateway/gateway-check.js";

/** What the forward-auth protocols send: the original request's method and URI. */
const ORIGINAL_URI = ["x-original-uri", "x-forwarded-uri"] as const;
/** Bound on the /check request headers (they are the client's headers, forwarded). */
const MAX_HEADER_BYTES = 32 * 1024;

/**
 * HTTP forward-auth on AUTHZ_PORT: `/check` (any method) for proxies that ask an HTTP endpoint
 * whether a request may pass (nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`,
 * Kong/APISIX forward-auth plugins). The client's headers arrive as this request's headers, the
 * original URI in X-Original-URI / X-Forwarded-Uri, the route's requirements in the auth URL's
 * query (`?scopes=a,b&charge=1&instance_header=x-instance-id`), and the proxy's own credential
 * in `Proxy-Authorization: Bearer <INTERNAL_TOKEN>` (Authorization is the client's).
 *
 * It answers 200 with the identity headers, or 401/403/429 with SPEC §3's JSON body (and
 * Retry-After on 429): nginx's auth_request passes only 401 and 403 on and turns anything else
 * into 500, so what `/v1` answers with 400 (a key in the URL, a malformed instance id) is 403 here,
 * with the same error code. Only faults that are no answer about the request are 5xx (storage
 * unavailable: 503; the proxy's settings broken: 500). HTTP/1.1 keep-alive.
 */
export function createForwardAuthServer(check: GatewayCheck, log: Logger) {
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, keepAliveTimeout: 65_000 }, (req, res) => {
    const url = parseUrl(req.url);
    if (url === null || url.pathname !== "/check") {
      if (url?.pathname === "/healthz") return send(res, 200, [["content-type", "application/json"]], '{"status":"ok"}');
      return sendError(res, 404, "not_found", `no route for ${req.method} ${url?.pathname ?? req.url}: use /check`);
    }
    check(new ForwardAuthRequest(req, url), "forward-auth").then(
      (d) => respond(res, d),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        if (ce.code === 16) return sendError(res, 401, "unauthenticated", `${ce.rawMessage} (send Proxy-Authorization: Bearer <INTERNAL_TOKEN> from the proxy)`);
        if (ce.code === 14 || ce.code === 4) return sendError(res, 503, "unavailable", ce.rawMessage);
        log.error({ err }, "forward-auth check failed");
        sendError(res, 500, "internal", "internal error");
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  return {
    server,
    listen(host: string, port: number): Promise<number> {
      return new Promise((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) => {
          if (host === "::" && (err.code === "EAFNOSUPPORT" || err.code === "EADDRNOTAVAIL")) {
            server.listen(port, "0.0.0.0", () => resolve((server.address() as { port: number }).port));
          } else reject(err);
        };
        server.once("error", onError);
        server.listen(port, host, () => {
          server.off("error", onError);
          resolve((server.address() as { port: number }).port);
        });
      });
    },
    /** Stops accepting, lets running checks answer, closes idle keep-alive sockets; forces after the deadline. */
    close(deadlineMs: number): Promise<void> {
      return new Promise((resolve) => {
        const force = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, deadlineMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

/**
 * A /check request as the gateway check reads it. A class, not an object literal of arrows: tsx's
 * keepNames would name each arrow with Object.defineProperty on every check (~0.6 µs each).
 */
class ForwardAuthRequest implements GatewayRequest {
  readonly uri: string;
  readonly clientIp: string | null;
  readonly requestId: string | null;
  readonly gatewayCredential: string | null;
  readonly peer: string | null;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly url: URL,
  ) {
    this.uri = ORIGINAL_URI.map((name) => this.header(name)).find((v) => v !== undefined && v !== "") ?? "/";
    const forwarded = this.header("x-forwarded-for");
    this.clientIp = (forwarded ? (forwarded.split(",").at(-1)?.trim() ?? null) : (this.header("x-real-ip") ?? null)) || null;
    this.requestId = this.header(REQUEST_ID_HEADER) ?? null;
    this.gatewayCredential = this.header("proxy-authorization") ?? null;
    this.peer = req.socket.remoteAddress ?? null;
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return Array.isArray(v) ? v.join(", ") : v;
  }

  headerNames(): Iterable<string> {
    return Object.keys(this.req.headers);
  }

  requirement(name: string): string | undefined {
    return this.url.searchParams.get(name) ?? undefined;
  }
}

function respond(res: http.ServerResponse, d: GatewayDecision): void {
  if (d.allow) {
    // Every identity header is always sent (an unbound key's x-zpk-instance-id empty), so a proxy
    // that copies them overwrites whatever the client sent under those names.
    return send(res, 200, [[REQUEST_ID_HEADER, d.requestId], ...d.upstream, ...d.client], "");
  }
  // 400-class answers of /v1 are 403 here (see above); the code in the body says which.
  const status = d.status === 400 ? 403 : d.status;
  // The body again, in a header: nginx's auth_request drops the subrequest's body, and its
  // error_page can answer with this (docs/gateways/nginx.conf). JSON.stringify leaves no newline.
  send(res, status, [...d.headers, ["x-zpk-error", asciiOnly(d.body)]], d.body);
}

function sendError(res: http.ServerResponse, status: number, code: ErrorCode, message: string): void {
  const id = newRequestId();
  const body = errorBodyText(code, message, id);
  send(res, status, [["content-type", "application/json"], [REQUEST_ID_HEADER, id], ["x-zpk-error", asciiOnly(body)]], body);
}

/** JSON with every non-ASCII character \u-escaped: still the same JSON, and a valid header value. */
const asciiOnly = (json: string) =>
  json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

function send(res: http.ServerResponse, status: number, headers: [string, string][], body: string): void {
  if (res.headersSent) return;
  const out: Record<string, string> = {};
  for (const [k, v] of headers) out[k] = v;
  out["content-length"] = String(Buffer.byteLength(body));
  res.writeHead(status, out);
  coalescedEnd(res, body); // with the turn's other answers
}

function parseUrl(raw: string | undefined): URL | null {
  try {
    return new URL(raw ?? "/", "http://localhost");
  } catch {
    return null;
  }
}
