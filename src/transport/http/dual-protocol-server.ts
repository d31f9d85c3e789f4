import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { answerParserRefusals, rememberConnectionStart } from "./client-error.js";
import { sendProtocolError } from "./protocol-error.js";
import type { NodeRequest, NodeResponse } from "./json-response.js";

/**
 * One cleartext port for curl (HTTP/1.1) and gRPC (HTTP/2 with prior knowledge).
 * `http2.createServer({allowHTTP1})` only falls back to HTTP/1.1 over TLS (ALPN), so we look at a
 * connection's first bytes: the HTTP/2 connection preface starts with `PRI * HTTP/2.0`, no
 * HTTP/1.x request does. The socket, with those bytes put back, goes to an `http` or an `http2`
 * server; both run the same request handler.
 *
 * Limits against slow or abusive clients: header and request timeouts, idle keep-alive timeout,
 * a cap on concurrent HTTP/2 streams per connection and on connections overall.
 */
export interface DualServerOptions {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConcurrentStreams: number;
  maxConnections: number;
  /** Requests declaring a larger body are answered and then their connection is closed. */
  bodyLimitBytes: number;
}

export const DEFAULT_LIMITS: DualServerOptions = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConcurrentStreams: 128,
  maxConnections: 20_000,
  bodyLimitBytes: 64 * 1024,
};

/** During shutdown, how long keep-alive connections get to send a request that is on its way. */
const KEEP_ALIVE_GRACE_MS = 1_000;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** What HTTP/1.1's requestTimeout answers too (client-error.ts). */
const REQUEST_TIMEOUT_MESSAGE = "the request did not arrive in time";

const pathOf = (url: string) => {
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
};

export function createDualProtocolServer(handler: (req: NodeRequest, res: NodeResponse) => void, opts = DEFAULT_LIMITS) {
  const h1 = http.createServer(
    {
      headersTimeout: opts.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      connectionsCheckingInterval: 1000, // how often those timeouts are enforced (Node's default: 30 s)
    },
    handler,
  );
  answerParserRefusals(h1);
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: opts.maxConcurrentStreams } }, handler);
  h2.setTimeout(opts.requestTimeoutMs * 4); // idle HTTP/2 sessions are closed
  h2.on("timeout", (session: http2.ServerHttp2Session) => session.close?.());
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A connection that has not shown which protocol it speaks within the header timeout is dropped.
    socket.setTimeout(opts.headersTimeoutMs, () => socket.destroy());
    // Decided only once the bytes seen differ from the HTTP/2 preface (HTTP/1.1) or complete it
    // (HTTP/2): a client may send its first bytes in pieces as small as one byte ("P", "OST …").
    let seen: Buffer = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const likeH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (likeH2 && n < PREFACE.length) return;
      socket.off("data", sniff);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(seen);
      if (!likeH2) rememberConnectionStart(socket, seen);
      (likeH2 ? h2 : h1).emit("connection", socket);
      process.nextTick(() => socket.resume());
    };
    socket.on("data", sniff);
  });
  server.maxConnections = opts.maxConnections;
  // The http server never listens itself, yet its timeouts (headersTimeout, requestTimeout) and
  // closeIdleConnections() depend on connection tracking that starts on "listening".
  server.on("listening", () => h1.emit("listening"));

  let draining = false;
  h1.prependListener("request", (req, res) => {
    // An oversized body is refused without being read (by us or by connect-node); the unread rest
    // would be taken for the next request on a keep-alive connection, so that connection ends.
    if (draining || Number(req.headers["content-length"] ?? 0) > opts.bodyLimitBytes) res.shouldKeepAlive = false;
  });
  // HTTP/1.1's requestTimeout, per HTTP/2 stream: the whole request (headers and body) must have
  // arrived within requestTimeoutMs, or the stream is answered 400 (in its protocol's form) and
  // reset. A server-streaming RPC (Health/Watch) has sent its whole request at once, so only its
  // own bounds apply to it (health-service.ts).
  h2.prependListener("request", (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const stream = req.stream;
    if (stream.endAfterHeaders) return;
    const timer = setTimeout(() => {
      if (stream.destroyed || (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended) return;
      sendProtocolError(req, res, pathOf(req.url), "invalid_argument", REQUEST_TIMEOUT_MESSAGE);
      // The answer first, then RST_STREAM so the client stops sending (RFC 9113 §8.1).
      setTimeout(() => stream.destroyed || stream.close(http2.constants.NGHTTP2_NO_ERROR), 50).unref();
    }, opts.requestTimeoutMs);
    timer.unref();
    req.once("end", () => clearTimeout(timer));
    stream.once("close", () => clearTimeout(timer));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  return {
    server,
    /**
     * Graceful stop: no new connections; HTTP/2 sessions get GOAWAY and finish their streams;
     * HTTP/1.1 keep-alive connections close as soon as they are idle; whatever is still open at
     * the deadline is cut.
     */
    async close(deadlineMs: number): Promise<void> {
      draining = true;
      server.close();
      for (const session of sessions) session.close();
      const deadline = Date.now() + deadlineMs;
      // A keep-alive client may have sent its next request already: for a grace period, answer
      // with `connection: close` instead of cutting idle-looking connections.
      const graceEnd = Math.min(deadline, Date.now() + KEEP_ALIVE_GRACE_MS);
      while (sockets.size > 0 && Date.now() < graceEnd) await new Promise((r) => setTimeout(r, 25));
      h1.close(() => {}); // stops h1's connection-tracking timer; the net server holds the port
      while (sockets.size > 0 && Date.now() < deadline) {
        h1.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 25));
      }
      for (const socket of sockets) socket.destroy();
    },
  };
}
