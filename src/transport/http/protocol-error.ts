import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { ApiError, ERROR_TABLE, type ErrorCode } from "../../domain/errors.js";
import { newRequestId, REQUEST_ID_HEADER } from "../../service/call-context.js";
import { type NodeRequest, type NodeResponse, sendError } from "./json-response.js";

/**
 * Refusals written before connect-node (or the REST adapter) ever sees a request, in the error
 * form of the protocol the request speaks, so every client gets an error it can read: gRPC and
 * gRPC-Web get a trailers-only response (`grpc-status`, `grpc-message`), Connect unary its JSON
 * error body with the HTTP status of the code, Connect streaming an end-stream message, and
 * anything else SPEC §3's REST body. The request body is not read.
 */
export type WireProtocol = "grpc" | "grpc-web" | "connect-stream" | "connect" | "rest";

/** `/<package>.<Service>/<Method>`: the path of an RPC, as every RPC protocol spells it. */
const RPC_PATH = /^\/[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\/[A-Za-z_][A-Za-z0-9_]*$/;

export function protocolOf(req: NodeRequest, pathname: string): WireProtocol {
  // Only RPC paths are connect-node's; everything else is REST whatever its content type.
  if (!RPC_PATH.test(pathname)) return "rest";
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  if (type.startsWith("application/connect+")) return "connect-stream";
  return "connect";
}

/** gRPC's percent-encoding of grpc-message (everything outside printable ASCII, and `%`). */
const grpcMessage = (s: string) =>
  [...Buffer.from(s, "utf8")].map((b) => (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");

export function sendProtocolError(req: NodeRequest, res: NodeResponse, pathname: string, code: ErrorCode, message: string): void {
  if (res.headersSent) return;
  const protocol = protocolOf(req, pathname);
  const requestId = newRequestId();
  if (protocol === "rest") return sendError(res, new ApiError(code, message), new Headers({ [REQUEST_ID_HEADER]: requestId }));
  const entry = ERROR_TABLE[code];
  // Connect spells gRPC codes in snake_case: InvalidArgument -> invalid_argument.
  const connectCode = (Code[entry.grpc as Code] ?? "unknown").replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
  if (protocol === "grpc" || protocol === "grpc-web") {
    const type = String(req.headers["content-type"]);
    return respond(res, 200, {
      "content-type": type.includes("+") || type.includes(";") ? type.split(";")[0]! : `${type}+proto`,
      "grpc-status": String(entry.grpc),
      "grpc-message": grpcMessage(message),
      [REQUEST_ID_HEADER]: requestId,
    });
  }
  if (protocol === "connect-stream") {
    const json = Buffer.from(JSON.stringify({ error: { code: connectCode, message } }));
    const head = Buffer.alloc(5);
    head[0] = 0b10; // end-stream flag
    head.writeUInt32BE(json.length, 1);
    return respond(res, 200, { "content-type": String(req.headers["content-type"]).split(";")[0]!, [REQUEST_ID_HEADER]: requestId }, Buffer.concat([head, json]));
  }
  const body = Buffer.from(JSON.stringify({ code: connectCode, message }));
  respond(res, entry.http, { "content-type": "application/json", "content-length": String(body.length), [REQUEST_ID_HEADER]: requestId }, body);
}

/** On HTTP/2 without a body, one HEADERS frame that ends the stream (gRPC's trailers-only). */
function respond(res: NodeResponse, status: number, headers: Record<string, string>, body?: Buffer): void {
  const stream = (res as http2.Http2ServerResponse).stream as http2.ServerHttp2Stream | undefined;
  if (stream && !body) {
    if (!stream.destroyed && !stream.headersSent) stream.respond({ ":status": status, ...headers }, { endStream: true });
    return;
  }
  (res as http.ServerResponse).writeHead(status, headers);
  if (body) res.end(body);
  else res.end();
}
