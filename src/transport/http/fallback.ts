import type { Logger } from "pino";
import { ApiError, invalid } from "../../domain/errors.js";
import { type NodeRequest, type NodeResponse, sendError, sendJson } from "./json-response.js";
import { serveDocs } from "../openapi/docs-routes.js";

export type RestHandler = (req: NodeRequest, res: NodeResponse, url: URL) => Promise<void>;

/** What the fallback needs: functions, never the store itself. */
export interface FallbackDeps {
  rest: RestHandler;
  /** Resolves when the store answers (the readiness probe); rejects when it does not. */
  ready: () => Promise<void>;
  log: Logger;
  isDraining: () => boolean;
  /** `/dashboard` (transport/dashboard/dashboard-handler.ts). */
  dashboard?: RestHandler;
}

/**
 * Everything on `PORT` that is not a Connect/gRPC/gRPC-Web RPC path: ops endpoints, the docs,
 * the REST routes, the dashboard and a JSON 404 for the rest. The key-in-URL refusal has already
 * run in front of all of it (guardKeyInUrl in key-in-url.ts).
 */
export function createFallback(deps: FallbackDeps) {
  return (req: NodeRequest, res: NodeResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      return sendError(res, invalid("malformed request URL"));
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
    if (deps.dashboard && (url.pathname === "/dashboard" || url.pathname.startsWith("/dashboard/"))) {
      return void deps.dashboard(req, res, url).catch((err) => {
        deps.log.error({ err }, "dashboard handler failed");
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
