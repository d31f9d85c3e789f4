import { STATUS_CODES } from "node:http";
import type * as net from "node:net";
import { ERROR_TABLE, type ErrorCode } from "../../domain/errors.js";
import { newRequestId } from "../../service/call-context.js";
import { errorBody } from "./json-response.js";

/**
 * What Node's HTTP/1.1 parser refuses before there is a request (a bad request line or header,
 * headers over 16 KiB, a request that did not arrive within `requestTimeout`) is answered in
 * SPEC §3's shape, `{"error":{"code","message"},"request_id"}`, with the status of the one error
 * table (Node alone would send a bare 400, 431, 413 or 408). Node's own guard is kept: nothing is
 * written once a response on that connection has begun.
 */
const REFUSALS: Record<string, { code: ErrorCode; message: string }> = {
  HPE_HEADER_OVERFLOW: { code: "invalid_argument", message: "request headers are larger than 16 KiB" },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { code: "payload_too_large", message: "chunk extensions are too large" },
  ERR_HTTP_REQUEST_TIMEOUT: { code: "invalid_argument", message: "the request did not arrive in time" },
};
const MALFORMED = { code: "invalid_argument", message: "malformed HTTP request" } as const;

/** The messages these refusals carry (tests tell them from the service's own 400s by them). */
export const PARSER_REFUSAL_MESSAGES: ReadonlySet<string> = new Set([...Object.values(REFUSALS), MALFORMED].map((r) => r.message));

export function answerClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
  const inFlight = (socket as net.Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code !== "ECONNRESET" && socket.writable && !inFlight?.headersSent) {
    const { code, message } = REFUSALS[err.code ?? ""] ?? MALFORMED;
    const status = ERROR_TABLE[code].http;
    const requestId = newRequestId();
    const body = JSON.stringify(errorBody(code, message, requestId));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
