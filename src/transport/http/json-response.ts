import type * as http from "node:http";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { ConnectError } from "@connectrpc/connect";
import { ApiError, ERROR_TABLE, type ErrorCode, errorCodeForGrpc } from "../../domain/errors.js";
import { coalescedEnd } from "./coalesced-end.js";
import { newRequestId, REQUEST_ID_HEADER } from "../../service/call-context.js";

/** The request and response types connect-node hands its fallback, for HTTP/1.1 and HTTP/2. */
type NodeHandlerFn = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type NodeRequest = Parameters<NodeHandlerFn>[0];
export type NodeResponse = Parameters<NodeHandlerFn>[1];

/** Writes a JSON response (or an empty one for 204) with the given headers, with the turn's other answers (coalesced-end.ts). */
export function sendJson(res: NodeResponse, status: number, body: unknown, headers: Headers = new Headers()): void {
  if (res.headersSent) return;
  if (status === 204 || body === undefined) {
    (res as http.ServerResponse).writeHead(status, headerRecord(res, headers));
    coalescedEnd(res);
    return;
  }
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** Writes a body already serialised as JSON, as text or UTF-8 bytes (REST's list page: transport/rest/key-page-json.ts). */
export function sendJsonText(res: NodeResponse, status: number, json: string | Uint8Array, headers: Headers): void {
  if (res.headersSent) return;
  const out = headerRecord(res, headers);
  out["content-type"] = "application/json";
  out["content-length"] = String(typeof json === "string" ? Buffer.byteLength(json) : json.byteLength);
  (res as http.ServerResponse).writeHead(status, out);
  coalescedEnd(res, json);
}

function headerRecord(res: NodeResponse, headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((v, k) => {
    out[k] = v;
  });
  if ("stream" in res) delete out.connection; // connection-specific headers are illegal in HTTP/2
  return out;
}

/**
 * Renders any failure as SPEC §3's `{"error":{"code","message"},"request_id"}` with the status of
 * the one error table (domain/errors.ts). A ConnectError from the service carries the ApiError it
 * was made from as `cause`; one raised by connect itself is placed by its gRPC code. Unknown
 * errors were already logged by the service; here they are `internal`.
 */
export function sendError(res: NodeResponse, err: unknown, headers: Headers = new Headers()): void {
  let code: ErrorCode = "internal";
  let message = "internal error";
  if (err instanceof ConnectError) {
    code = err.cause instanceof ApiError ? err.cause.code : errorCodeForGrpc(err.code);
    message = err.rawMessage;
    err.metadata.forEach((v, k) => headers.set(k, v));
  } else if (err instanceof ApiError) {
    code = err.code;
    message = err.message;
    for (const [k, v] of Object.entries(err.headers)) headers.set(k, v);
  }
  const status = ERROR_TABLE[code].http;
  const requestId = headers.get(REQUEST_ID_HEADER) ?? newRequestId();
  headers.set(REQUEST_ID_HEADER, requestId);
  sendJson(res, status, errorBody(code, message, requestId), headers);
}

/** SPEC §3's error body. */
export const errorBody = (code: ErrorCode, message: string, requestId: string) => ({ error: { code, message }, request_id: requestId });
