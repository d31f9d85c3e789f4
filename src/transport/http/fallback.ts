import type { Logger } from "pino";
import { ApiError, invalid } from "../../domain/errors.js";
import { type NodeRequest, type NodeResponse, sendError, sendJson } from "./json-response.js";
import { refuseKeyInUrl } from "./key-in-url.js";
import { serveDocs } from "../openapi/docs-routes.js";

export type RestHandler = (req: NodeRequest, res: NodeResponse, url: URL) => Promise<void>;

/** What the fallback needs: functions, never the store itself. */
export interface FallbackDeps {
  rest: RestHandler;
  /** Resolves when the store answers (the readiness probe); rejects when it does not. */
  ready: () => Promise<void>;
  log: Logger;
  isDraining: () => boolean;
}

/**
 * Everything on `PORT` that is not a Connect/gRPC/gRPC-Web RPC path: the key-in-URL guard
 * (before any other check), ops endpoints, the REST routes, and a JSON 404 for the rest.
 */
export function createFallback(deps: FallbackDeps) {
  return (req: NodeRequest, res: NodeResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      return sendError(res, invalid("malformed request URL"));
    }
    try {
      refuseKeyInUrl(url);
    } catch (err) {
      return sendError(res, err);
    }
    if (serveDocs(req, res, url)) return;
    if (url.pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (url.pathname === "/readyz") return void ready(res, deps);
    if (url.pathname === "/v1" || url.pathname.startsWith("/v1/")) {
      return void deps.rest(req, res, url).catch((err) => {
        deps.log.error({ err }, "REST handler failed");
        sendError(res, err);
      });
    }
    sendError(res, new ApiError("not_found", `no route for ${req.method} ${url.pathname}`));
  };
}

async function ready(res: NodeResponse, deps: Pick<FallbackDeps, "ready" | "isDraining">): Promise<void> {
  if (deps.isDraining()) return sendJson(res, 503, { status: "draining" });
  try {
    await deps.ready();
    sendJson(res, 200, { status: "ready" });
  } catch {
    sendJson(res, 503, { status: "unavailable" });
  }
}
