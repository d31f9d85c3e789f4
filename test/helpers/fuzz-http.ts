import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";

/**
 * Low-level HTTP plumbing for the hostile-input tests: a keep-alive `node:http` client that sends
 * exactly what it is given (any method token, any latin-1 header value, raw body bytes), a raw
 * socket client for requests `node:http` refuses to build, the error-shape check of SPEC §3, a
 * scanner for secrets in text, and the RSS of a process.
 */

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  ms: number;
}

/**
 * The documented closed set of error codes: SPEC §3's, `method_not_allowed` (405), and those issue 13
 * ("Key lifecycle") added: `key_disabled`, `failed_precondition`, `idempotency_conflict`,
 * `already_exists`. Written out here, not read from src/domain/errors.ts, so that a code the
 * server invents without documenting it is caught.
 */
export const ERROR_CODES = new Set([
  "invalid_argument",
  "key_in_url",
  "unauthenticated",
  "key_expired",
  "key_revoked",
  "key_disabled",
  "failed_precondition",
  "idempotency_conflict",
  "already_exists",
  "permission_denied",
  "not_found",
  "method_not_allowed",
  "payload_too_large",
  "rate_limited",
  "internal",
  "unavailable",
]);

/** HTTP status each code must come with (SPEC §3). */
export const STATUS_OF_CODE: Record<string, number> = {
  invalid_argument: 400,
  key_in_url: 400,
  unauthenticated: 401,
  key_expired: 401,
  key_revoked: 401,
  key_disabled: 401,
  failed_precondition: 400,
  idempotency_conflict: 409,
  already_exists: 409,
  permission_denied: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/**
 * Drops sockets idle for 2 s, well before the server's keep-alive timeout (5 s): Node's agent
 * honours the server's `Keep-Alive: timeout=…` hint only when the response carries it, and a
 * socket reused just as the server closes it fails with ECONNRESET (a client-side race).
 */
class ShortKeepAliveAgent extends http.Agent {
  override keepSocketAlive(socket: net.Socket): boolean {
    // Node returns whether the socket may be kept (typed `void` in @types/node).
    const keep = (super.keepSocketAlive(socket) as unknown as boolean | undefined) !== false;
    socket.setTimeout(2_000);
    return keep;
  }
}

export class FuzzHttpClient {
  readonly agent: http.Agent;
  constructor(
    private readonly host: string,
    private readonly port: number,
    maxSockets = 16,
  ) {
    // With an agent timeout set, Node honours the server's `Keep-Alive: timeout=5` hint and drops
    // idle sockets a second before the server does; without one it ignores the hint and may reuse a
    // socket the server is closing (ECONNRESET: a client-side race, not a server fault).
    this.agent = new ShortKeepAliveAgent({ keepAlive: true, maxSockets, timeout: 60_000 });
  }

  /**
   * Sends one request. Rejects only on a transport failure (reset, timeout): callers decide
   * whether that is acceptable (e.g. a body over the limit may be cut while it is still being sent).
   */
  request(method: string, path: string, headers: Record<string, string>, body?: Buffer, timeoutMs = 15_000, note = ""): Promise<RawResponse> {
    const started = performance.now();
    // node:http sends a GET/DELETE body with neither Content-Length nor chunked encoding (so the
    // server would read it as the next request): always frame the body explicitly.
    if (body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === "content-length")) {
      headers = { ...headers, "content-length": String(body.length) };
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.host, port: this.port, method, path, headers, agent: this.agent, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString("utf8"),
              ms: performance.now() - started,
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      // What went over this keep-alive connection before: a reset is often the previous request's doing.
      let socket: (net.Socket & { history?: string[]; requests?: number; born?: number; lastDone?: number }) | undefined;
      let sentAt = 0;
      const what = `${method} ${path.slice(0, 80)} body ${body?.length ?? 0} B ${note}`.trim();
      req.on("socket", (s) => {
        socket = s;
        socket.born ??= Date.now();
        socket.requests = (socket.requests ?? 0) + 1;
        socket.history ??= [];
      });
      req.on("error", (e: Error) => {
        if (socket?.history?.length) {
          const now = Date.now();
          e.message += ` [request #${socket.requests} on a connection opened ${((now - socket.born!) / 1000).toFixed(1)} s ago; sent ${sentAt ? now - sentAt : "?"} ms before the error, ${sentAt && socket.lastDone ? sentAt - socket.lastDone : "?"} ms after the previous answer; earlier on this connection: ${socket.history.join(" | ")}]`;
        }
        reject(e);
      });
      req.on("finish", () => (sentAt = Date.now()));
      req.on("response", (res) => {
        res.on("end", () => {
          if (!socket) return;
          socket.lastDone = Date.now();
          socket.history!.push(`${what} -> ${res.statusCode} in ${Date.now() - sentAt} ms`);
          if (socket.history!.length > 3) socket.history!.shift();
        });
      });
      if (body !== undefined) req.end(body);
      else req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Writes `raw` on a fresh connection and reads until the server closes it (or `timeoutMs`).
 * Returns the bytes received; `status` is parsed from the status line when there is one.
 */
export function rawExchange(port: number, raw: Buffer, timeoutMs = 10_000): Promise<{ status: number | null; text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text, closedByServer });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => finish(true));
    socket.on("close", () => finish(true));
    socket.on("error", () => finish(true));
    socket.on("connect", () => socket.write(raw));
  });
}

/**
 * Writes `chunks` on a fresh connection, 50 ms apart (so the server reads them separately), and
 * returns everything received (latin-1) once the server closes the connection (or `timeoutMs`).
 */
export function rawExchangeInChunks(port: number, chunks: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(received).toString("latin1"));
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on("data", (c: Buffer) => received.push(c));
    socket.on("close", finish);
    socket.on("error", finish);
    socket.on("connect", async () => {
      for (const c of chunks) {
        if (socket.destroyed) return;
        socket.write(Buffer.from(c, "latin1"));
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  });
}

/** The body of a raw HTTP/1.1 response (after the blank line), de-chunked when needed. */
export function rawBody(text: string): { headers: string; body: string } {
  const i = text.indexOf("\r\n\r\n");
  if (i < 0) return { headers: text, body: "" };
  const headers = text.slice(0, i);
  let body = text.slice(i + 4);
  if (/^transfer-encoding:\s*chunked/im.test(headers)) {
    let out = "";
    let rest = body;
    for (;;) {
      const j = rest.indexOf("\r\n");
      if (j < 0) break;
      const n = parseInt(rest.slice(0, j), 16);
      if (!n) break;
      out += rest.slice(j + 2, j + 2 + n);
      rest = rest.slice(j + 2 + n + 2);
    }
    body = out;
  }
  return { headers, body: Buffer.from(body, "latin1").toString("utf8") };
}

/**
 * Problems with an error response, per SPEC §3: `{"error":{"code","message"},"request_id"}` and
 * nothing else, a code from the closed set with its documented status, a message without a stack
 * trace, and `X-Request-Id` equal to `request_id`. Empty when the response is fine.
 */
export function errorShapeProblems(status: number, headers: Record<string, string | string[] | undefined>, text: string, opts: { head?: boolean } = {}): string[] {
  const problems: string[] = [];
  const requestIdHeader = headers["x-request-id"];
  if (typeof requestIdHeader !== "string" || requestIdHeader.length === 0) problems.push("no X-Request-Id header");
  if (opts.head) return problems; // HEAD responses carry no body
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return [...problems, `error body is not JSON: ${JSON.stringify(text.slice(0, 200))}`];
  }
  if (!/application\/json/.test(String(headers["content-type"] ?? ""))) problems.push(`content-type ${headers["content-type"]}`);
  if (body === null || typeof body !== "object" || Array.isArray(body)) return [...problems, "error body is not an object"];
  const keys = Object.keys(body).sort().join(",");
  if (keys !== "error,request_id") problems.push(`error body keys are [${keys}]`);
  const err = body.error;
  if (err === null || typeof err !== "object") return [...problems, "error is not an object"];
  if (Object.keys(err).sort().join(",") !== "code,message") problems.push(`error keys are [${Object.keys(err).join(",")}]`);
  if (typeof err.code !== "string" || !ERROR_CODES.has(err.code)) problems.push(`error code ${JSON.stringify(err.code)} is not in SPEC §3's set`);
  else if (STATUS_OF_CODE[err.code] !== status) problems.push(`code ${err.code} came with HTTP ${status}, expected ${STATUS_OF_CODE[err.code]}`);
  if (typeof err.message !== "string" || err.message.length === 0) problems.push("error message missing");
  else if (/\n\s+at |\.ts:\d+|node_modules/.test(err.message)) problems.push("error message has a stack trace");
  if (typeof body.request_id !== "string" || body.request_id.length === 0) problems.push("request_id missing");
  else if (body.request_id !== requestIdHeader) problems.push(`request_id ${body.request_id} != X-Request-Id ${requestIdHeader}`);
  return problems;
}

/** Anything shaped like a zpk key (SPEC §2), checksum or not. */
export const SECRET_LIKE = /zpk_(?:live|test)_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}/g;

/**
 * Remembers issued secrets and finds them (or their 43-char random part, which is the secret in
 * all but name) in text, in time linear in the text, however many secrets there are.
 */
export class SecretRegistry {
  readonly secrets = new Set<string>();
  private readonly randomParts = new Map<string, string>();

  add(secret: string): void {
    this.secrets.add(secret);
    this.randomParts.set(secret.slice(9, 52), secret);
  }

  get size(): number {
    return this.secrets.size;
  }

  /** Issued secrets whose random part occurs in `text`. */
  find(text: string): string[] {
    const found = new Set<string>();
    for (const m of text.matchAll(/[A-Za-z0-9_-]{43,}/g)) {
      const run = m[0];
      for (let i = 0; i + 43 <= run.length; i++) {
        const s = this.randomParts.get(run.slice(i, i + 43));
        if (s) found.add(s);
      }
    }
    return [...found];
  }
}

/** Resident set size of a process in MiB, from /proc/<pid>/status (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Math.round((Number(m[1]) / 1024) * 10) / 10;
}

/** The server's JSON log lines that mention `requestId` (errors first, at most `max`). */
export function logLinesFor(output: string, requestId: string, max = 6): string[] {
  if (!requestId) return [];
  const lines = output.split("\n").filter((l) => l.includes(`"${requestId}"`));
  const errors = lines.filter((l) => /"level":(50|60)/.test(l));
  return [...errors, ...lines.filter((l) => !errors.includes(l))].slice(0, max);
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat (Linux). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms
}

/** Open sockets of a process (TCP and Unix), from /proc/<pid>/fd (Linux). */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

/** SPEC §3's credential-named query parameters (any case) and key-looking names or values. */
export function keyInQuery(url: URL): boolean {
  return [...url.searchParams].some(
    ([k, v]) => ["api_key", "apikey", "key", "token", "access_token"].includes(k.toLowerCase()) || /zpk_(live|test)_/.test(v) || /zpk_(live|test)_/.test(k),
  );
}

/** The key-in-URL refusal's message (src/transport/http/key-in-url.ts) starts so. */
export const KEY_IN_URL_MESSAGE_START = "API keys must not be sent in the URL";

/**
 * Problems with the answer to an RPC-path request (`/pkg.Service/Method`) that carried a key in
 * its query: it must be the refusal in that protocol's form. gRPC and gRPC-Web: trailers-only
 * `grpc-status: 3` with the message; Connect streaming: an end-stream error; Connect unary (and
 * anything else on an RPC path): HTTP 400 `{"code":"invalid_argument","message":…}`.
 */
export function rpcKeyInUrlProblems(contentType: string, status: number, headers: Record<string, string | string[] | undefined>, text: string): string[] {
  const type = contentType.toLowerCase();
  if (type.startsWith("application/grpc")) {
    const message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
    if (status !== 200 || headers["grpc-status"] !== "3" || !message.startsWith(KEY_IN_URL_MESSAGE_START)) {
      return [`gRPC answer ${status} grpc-status ${headers["grpc-status"]} ${JSON.stringify(message.slice(0, 60))}, expected trailers-only INVALID_ARGUMENT key-in-URL`];
    }
    return [];
  }
  if (type.startsWith("application/connect+")) {
    if (status !== 200 || !text.includes('"code":"invalid_argument"') || !text.includes(KEY_IN_URL_MESSAGE_START)) return [`Connect streaming answer ${status} ${JSON.stringify(text.slice(0, 80))}`];
    return [];
  }
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    /* checked below */
  }
  if (status !== 400 || body?.code !== "invalid_argument" || !String(body?.message).startsWith(KEY_IN_URL_MESSAGE_START)) {
    return [`Connect answer ${status} ${JSON.stringify(text.slice(0, 80))}, expected 400 invalid_argument key-in-URL`];
  }
  return [];
}
