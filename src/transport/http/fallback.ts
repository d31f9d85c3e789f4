import type { Logger } from "pino";
import { DomainError } from "../../domain/errors.js";
import type { Store } from "../../storage/store.js";
import { type NodeRequest, type NodeResponse, sendError, sendJson } from "./json-response.js";
import { refuseKeyInUrl } from "./key-in-url.js";

export type RestHandler = (req: NodeRequest, res: NodeResponse, url: URL) => Promise<void>;

/**
 * Everything on `PORT` that is not a Connect/gRPC/gRPC-Web RPC path: the key-in-URL guard
 * (before any other check), ops endpoints, the REST routes, and a JSON 404 for the rest.
 */
export function createFallback(deps: { rest: RestHandler; store: Store; log: Logger; isDraining: () => boolean; dashboard?: RestHandler }) {
  return (req: NodeRequest, res: NodeResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      return sendError(res, new DomainError("invalid_argument", "malformed request URL"));
    }
    try {
      refuseKeyInUrl(url);
    } catch (err) {
      return sendError(res, err);
    }
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
    sendError(res, new DomainError("not_found", `no route for ${req.method} ${url.pathname}`));
  };
}

async function ready(res: NodeResponse, deps: { store: Store; isDraining: () => boolean }): Promise<void> {
  if (deps.isDraining()) return sendJson(res, 503, { status: "draining" });
  try {
    await deps.store.ping();
    sendJson(res, 200, { status: "ready" });
  } catch {
    sendJson(res, 503, { status: "unavailable" });
  }
}
