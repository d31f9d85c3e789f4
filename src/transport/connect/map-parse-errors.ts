import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * A request body that is not a valid protobuf message is the client's mistake: INVALID_ARGUMENT
 * (HTTP 400 over Connect), as GRPC_PORT answers it. connect-es (2.x) parses request messages with
 * the serialization it shares with its clients, where a bad message is a server fault, and so
 * answers `INTERNAL "parse binary: …"` (HTTP 500) on every protocol of PORT.
 *
 * Why this way: a connect interceptor cannot see it (connect-es parses a unary request before the
 * interceptor chain runs: `invokeUnaryImplementation` gets the parsed message), and decoding the
 * body ourselves first would mean re-implementing each protocol's framing and compression and
 * parsing every message twice. So each universal handler of the router is wrapped, and only
 * connect-es's own error answer is rewritten, in the form of the protocol that made it:
 * - Connect unary: HTTP 500 JSON `{"code":"internal","message":"parse binary: …"}` → 400
 *   `invalid_argument` (only 500 answers are read; nothing else is touched);
 * - gRPC: the `grpc-status` trailer 13 → 3 (set before the handler resolves: connect-es reads the
 *   first response message, hence the request, before it returns the response);
 * - gRPC-Web and Connect streaming: the same status in the body's final trailer / end-stream frame.
 * The message becomes `malformed protobuf request: <parser's reason>`, the words of GRPC_PORT.
 * tests: test/e2e/malformed-bodies.test.ts (fails if connect-es changes its message).
 */
export function mapParseErrors(router: ConnectRouter): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]!);
}

const PREFIX = "parse binary: ";
const OUR_PREFIX = "malformed protobuf request: ";
const GRPC_INTERNAL = "13";
const GRPC_INVALID_ARGUMENT = "3";

function wrap(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    if (res.status === 500) return connectUnary(res);
    if (res.trailer) {
      rewriteGrpcTrailer(res.trailer);
      return res;
    }
    const type = res.header?.get("content-type") ?? "";
    if (res.body && (type.startsWith("application/grpc-web") || type.startsWith("application/connect+"))) {
      return { ...res, body: rewriteFinalFrame(res.body, type.startsWith("application/connect+")) };
    }
    return res;
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
    requestPath: handler.requestPath,
    service: handler.service,
    method: handler.method,
  });
}

async function connectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (!res.body || res.header?.get("content-encoding") || !/^application\/json/.test(res.header?.get("content-type") ?? "")) return res;
  const chunks: Uint8Array[] = [];
  for await (const c of res.body) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  let error: { code?: unknown; message?: unknown } | null = null;
  try {
    error = JSON.parse(bytes.toString("utf8"));
  } catch {
    /* not connect-es's JSON error: passed on as it came */
  }
  if (error?.code !== "internal" || typeof error.message !== "string" || !error.message.startsWith(PREFIX)) {
    return { ...res, body: once(bytes) };
  }
  const body = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument", message: OUR_PREFIX + error.message.slice(PREFIX.length) }));
  const header = new Headers(res.header);
  header.set("content-length", String(body.length));
  return { ...res, status: 400, header, body: once(body) };
}

/** grpc-status 13 with connect-es's parse message → 3. */
function rewriteGrpcTrailer(trailer: Headers): void {
  if (trailer.get("grpc-status") !== GRPC_INTERNAL) return;
  const message = decodeGrpcMessage(trailer.get("grpc-message") ?? "");
  if (!message.startsWith(PREFIX)) return;
  trailer.set("grpc-status", GRPC_INVALID_ARGUMENT);
  trailer.set("grpc-message", encodeGrpcMessage(OUR_PREFIX + message.slice(PREFIX.length)));
}

/**
 * Passes a gRPC-Web / Connect-streaming body through, rewriting its last frame when that frame is
 * an uncompressed trailer (gRPC-Web, flag 0x80) or end-stream message (Connect, flag 0x02) holding
 * connect-es's parse error. connect-es writes that frame as a chunk of its own.
 */
async function* rewriteFinalFrame(body: AsyncIterable<Uint8Array>, connect: boolean): AsyncIterable<Uint8Array> {
  const flag = connect ? 0x02 : 0x80;
  for await (const chunk of body) {
    if (chunk.length >= 5 && chunk[0] === flag && Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).readUInt32BE(1) === chunk.length - 5) {
      const text = Buffer.from(chunk.subarray(5)).toString("utf8");
      const rewritten = connect ? rewriteEndStream(text) : rewriteTrailerBlock(text);
      if (rewritten !== null) {
        const data = Buffer.from(rewritten, connect ? "utf8" : "latin1");
        const head = Buffer.alloc(5);
        head[0] = flag;
        head.writeUInt32BE(data.length, 1);
        yield Buffer.concat([head, data]);
        continue;
      }
    }
    yield chunk;
  }
}

/** A gRPC-Web trailer block (`name: value\r\n` lines), or null when it is not the parse error. */
function rewriteTrailerBlock(text: string): string | null {
  const lines = text.split("\r\n");
  const status = lines.findIndex((l) => /^grpc-status:\s*13\s*$/i.test(l));
  const msg = lines.findIndex((l) => /^grpc-message:/i.test(l));
  if (status < 0 || msg < 0) return null;
  const message = decodeGrpcMessage(lines[msg]!.slice(lines[msg]!.indexOf(":") + 1).trim());
  if (!message.startsWith(PREFIX)) return null;
  lines[status] = `grpc-status: ${GRPC_INVALID_ARGUMENT}`;
  lines[msg] = `grpc-message: ${encodeGrpcMessage(OUR_PREFIX + message.slice(PREFIX.length))}`;
  return lines.join("\r\n");
}

/** A Connect end-stream message `{"error":{…}}`, or null when it is not the parse error. */
function rewriteEndStream(text: string): string | null {
  try {
    const end = JSON.parse(text);
    const e = end?.error;
    if (e?.code !== "internal" || typeof e.message !== "string" || !e.message.startsWith(PREFIX)) return null;
    return JSON.stringify({ ...end, error: { ...e, code: "invalid_argument", message: OUR_PREFIX + e.message.slice(PREFIX.length) } });
  } catch {
    return null;
  }
}

/** The gRPC spec's percent-encoding: bytes outside printable ASCII, and `%`. */
function encodeGrpcMessage(m: string): string {
  return m.replace(/[^\x20-\x24\x26-\x7e]/g, (c) => [...Buffer.from(c, "utf8")].map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join(""));
}

function decodeGrpcMessage(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
