import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type * as net from "node:net";
import { ERROR_TABLE, type ErrorCode } from "../../domain/errors.js";
import { newRequestId } from "../../service/call-context.js";
import { errorBody } from "./json-response.js";

/**
 * What Node's HTTP/1.1 parser refuses before there is a request (a bad request line or header,
 * headers over 16 KiB, a request that did not arrive within `requestTimeout`) is answered in
 * SPEC §3's shape, `{"error":{"code","message"},"request_id"}`, with the status of the one error
 * table (Node alone would send a bare 400, 431, 413 or 408); a refused HEAD gets the same status
 * and headers without the body. Node's own guard is kept: nothing is written once a response on
 * that connection has begun.
 */
const REFUSALS: Record<string, { code: ErrorCode; message: string }> = {
  HPE_HEADER_OVERFLOW: { code: "invalid_argument", message: "request headers are larger than 16 KiB" },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { code: "payload_too_large", message: "chunk extensions are too large" },
  ERR_HTTP_REQUEST_TIMEOUT: { code: "invalid_argument", message: "the request did not arrive in time" },
};
const MALFORMED = { code: "invalid_argument", message: "malformed HTTP request" } as const;

/** The messages these refusals carry (tests tell them from the service's own 400s by them). */
export const PARSER_REFUSAL_MESSAGES: ReadonlySet<string> = new Set([...Object.values(REFUSALS), MALFORMED].map((r) => r.message));

/**
 * The first bytes of each HTTP/1.1 connection until its first request is parsed: the method of a
 * refused first request, when the refusal came with a later read than its request line.
 */
const connectionStarts = new WeakMap<net.Socket, Buffer>();

/** Called by the port's sniffer with a connection's first read, before node:http parses it. */
export function rememberConnectionStart(socket: net.Socket, first: Buffer): void {
  connectionStarts.set(socket, Buffer.from(first.subarray(0, 16)));
}

/** Answers what `h1`'s parser refuses (see the module comment). */
export function answerParserRefusals(h1: Server): void {
  h1.on("clientError", answerClientError);
  h1.on("request", (req: IncomingMessage) => connectionStarts.delete(req.socket));
}

export function answerClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }, socket: net.Socket): void {
  const inFlight = (socket as net.Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code !== "ECONNRESET" && socket.writable && !inFlight?.headersSent) {
    const { code, message } = REFUSALS[err.code ?? ""] ?? MALFORMED;
    const status = ERROR_TABLE[code].http;
    const requestId = newRequestId();
    const head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\nx-request-id: ${requestId}\r\nconnection: close\r\n`;
    if (refusedRequestIsHead(err, socket)) {
      // RFC 9110 §9.3.2: no content in a response to HEAD. No content-length either: it would have
      // to be the length of the GET answer (§8.6), and the connection closes anyway.
      socket.write(`${head}\r\n`);
    } else {
      const body = JSON.stringify(errorBody(code, message, requestId));
      socket.write(`${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
  }
  socket.destroy();
}

const HEAD = Buffer.from("HEAD ");

/**
 * Whether the request the parser refused is a HEAD. node:http tells the method only once a
 * request's headers are complete, so before that it is read from the bytes: the refused read
 * (`rawPacket`, refused at `bytesParsed`) holds the request's start if an earlier request on the
 * connection ended in it, or begins with it when the request came in a read of its own; a first
 * request may span reads, so the connection's first bytes are kept until it is parsed. Left: a
 * later request on a keep-alive connection whose request line and the refusal come in different
 * reads — answered as any other request (with the JSON body).
 */
function refusedRequestIsHead(err: { rawPacket?: Buffer; bytesParsed?: number }, socket: net.Socket): boolean {
  const parser = (socket as net.Socket & { parser?: { headersCompleted?: () => boolean; incoming?: { method?: string } | null } | null }).parser;
  if (parser?.incoming && parser.headersCompleted?.()) return parser.incoming.method === "HEAD"; // refused in its body
  const first = connectionStarts.get(socket);
  if (first) return startsWithHead(first, 0, true);
  const raw = err.rawPacket;
  if (!Buffer.isBuffer(raw)) return false;
  const upTo = Math.min(raw.length, err.bytesParsed ?? raw.length);
  const crlf = raw.lastIndexOf("\r\n\r\n", upTo - 4);
  const lf = raw.lastIndexOf("\n\n", upTo - 2);
  const start = Math.max(crlf < 0 ? 0 : crlf + 4, lf < 0 ? 0 : lf + 2);
  return startsWithHead(raw, start);
}

/**
 * `HEAD ` at `at`, after the empty lines a server ignores before a request line (RFC 9112 §2.2).
 * With `mayEnd`, bytes that end early on a prefix of it count too (a first read of "HEA": no
 * other method starts with H).
 */
function startsWithHead(buf: Buffer, at: number, mayEnd = false): boolean {
  while (buf[at] === 0x0d || buf[at] === 0x0a) at++;
  const got = buf.subarray(at, at + HEAD.length);
  return got.length > 0 && (got.length === HEAD.length || mayEnd) && got.equals(HEAD.subarray(0, got.length));
}
