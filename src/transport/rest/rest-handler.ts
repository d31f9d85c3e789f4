import type { JsonValue, Message } from "@bufbuild/protobuf";
import { ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ApiKeyService, type ListKeysRequest } from "../../../gen/apikeys/v1/api_key_service_pb.js";
import { ApiError, invalid } from "../../domain/errors.js";
import { echoRequestId, requestIdOf } from "../../service/call-context.js";
import type { ApiKeyServiceParts } from "../../service/api-key-service.js";
import { type NodeRequest, type NodeResponse, sendError, sendJson, sendJsonText } from "../http/json-response.js";
import { LeanHandlerContext } from "../lean-handler-context.js";
import { NodeRequestHeaders } from "../http/node-request-headers.js";
import { decodeRequest } from "./decode-request.js";
import { keyPageJson } from "./key-page-json.js";
import { present, presentEachFlattened, presentFlattened } from "./present.js";
import { type RestRoute, restRoutes } from "./routes.js";

const NO_QUERY = new URLSearchParams();

type UnaryFn = (req: Message, ctx: HandlerContext) => Promise<Message>;

/** How a successful REST response differs from "200 with the response (or its response_body)". */
export const SUCCESS: Record<string, { status: number; location?: (res: { key?: { id: string } }) => string; flatten?: string; flattenEach?: string }> = {
  IssueKey: { status: 201, location: (res) => `/v1/api-keys/${res.key?.id ?? ""}`, flatten: "key" },
  RollKey: { status: 201, location: (res) => `/v1/api-keys/${res.key?.id ?? ""}`, flatten: "key" },
  // {"data": [<key object plus secret>, …]}, no Location (issue 13).
  BatchIssueKeys: { status: 201, flattenEach: "data" },
  RevokeKey: { status: 204 },
};

/**
 * The REST/JSON face of SPEC §3: routes from the proto's `google.api.http` options, mapped onto
 * the very same ServiceImpl methods the RPC transports call, with a HandlerContext of protocol
 * `rest`. Credentials, request ids, rate-limit headers and errors are the service's own; this
 * adapter only decodes the HTTP request and shapes the HTTP response. ListKeys goes through
 * `listKeyRecords` (the same call, answering records), whose page JSON is built from them.
 */
export function createRestHandler(
  service: ApiKeyServiceParts,
  opts: { bodyLimitBytes: number; contextValues: (req: NodeRequest) => ContextValues; log: Logger },
) {
  const routes = restRoutes();

  return async function handleRest(req: NodeRequest, res: NodeResponse, url: URL): Promise<void> {
    const hit = routeOf(routes, req.method, url.pathname);
    if (!hit) {
      const allowed = routes.filter((r) => r.pattern.test(url.pathname)).map((r) => r.httpMethod);
      if (allowed.length === 0) return sendError(res, new ApiError("not_found", `no route for ${req.method} ${url.pathname}`));
      const allow = allowed.join(", ");
      return sendError(res, new ApiError("method_not_allowed", `${req.method} is not allowed on ${url.pathname}; use ${allow}`), new Headers({ allow }));
    }
    const { route, m } = hit;
    const ctx = new LeanHandlerContext({
      service: ApiKeyService,
      method: route.method,
      protocolName: "rest",
      requestMethod: req.method ?? "GET",
      url: url.toString(),
      requestHeader: new NodeRequestHeaders(req.headers),
      values: opts.contextValues(req),
      watchCancel: cancelWatcher(res),
    });
    try {
      const body = route.body === "*" ? await readJson(req, opts.bodyLimitBytes) : undefined;
      const params = Object.fromEntries(route.params.map((p, i) => [p, decodePathParam(p, m[i + 1]!)]));
      // (A URL's searchParams is an object made on first use: not for a request with no query.)
      const input = decodeRequest(route, params, url.search === "" ? NO_QUERY : url.searchParams, body);
      if (route.method === ApiKeyService.method.listKeys) {
        const page = await service.listKeyRecords(input as ListKeysRequest, ctx);
        return sendJsonText(res, 200, keyPageJson(page), ctx.responseHeader);
      }
      const fn = (service.impl as unknown as Record<string, UnaryFn>)[route.method.localName]!;
      const output = await fn(input, ctx);
      const shape = SUCCESS[route.method.name];
      const status = shape?.status ?? 200;
      if (shape?.location) ctx.responseHeader.set("location", shape.location(output as { key?: { id: string } }));
      if (status === 204) return sendJson(res, 204, undefined, ctx.responseHeader);
      sendJson(res, status, shape?.flattenEach ? presentEachFlattened(route.method.output, output, shape.flattenEach, "key") : shapeBody(route, output, shape?.flatten), ctx.responseHeader);
    } catch (err) {
      if (clientAborted(err)) {
        // The client went away mid-request (an upload cut short): its doing, nobody to answer.
        opts.log.debug({ requestId: requestIdOf(ctx), code: (err as NodeJS.ErrnoException).code }, "client aborted the request");
        return;
      }
      if (!(err instanceof ApiError) && !(err instanceof ConnectError)) {
        opts.log.error({ err, requestId: requestIdOf(ctx) }, "REST response failed");
      }
      echoRequestId(ctx);
      sendError(res, err, ctx.responseHeader);
    }
  };
}

/** The route of this method and path, with its path parameters (the 404 and 405 answers look further). */
function routeOf(routes: RestRoute[], method: string | undefined, path: string): { route: RestRoute; m: RegExpExecArray } | null {
  for (const route of routes) {
    if (route.httpMethod !== method) continue;
    const m = route.pattern.exec(path);
    if (m !== null) return { route, m };
  }
  return null;
}

/** The errors a request stream fails with when its client disconnects or resets the stream. */
const ABORT_CODES = new Set(["ECONNRESET", "ECONNABORTED", "EPIPE", "ERR_STREAM_PREMATURE_CLOSE", "ERR_HTTP2_STREAM_ERROR"]);
const clientAborted = (err: unknown) =>
  err instanceof Error && (ABORT_CODES.has((err as NodeJS.ErrnoException).code ?? "") || err.message === "aborted");

function shapeBody(route: RestRoute, output: Message, flatten?: string): JsonValue {
  if (flatten) return presentFlattened(route.method.output, output, flatten);
  const whole = present(route.method.output, output);
  return route.responseBody ? (whole[route.responseBody] ?? null) : whole;
}

function decodePathParam(name: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw invalid(`malformed percent-encoding in ${name}`);
  }
}

/**
 * Cancels the context if the client goes away before the answer was written, subscribed only when
 * something asks for the context's signal (LeanHandlerContext): a listener on every response was
 * work for nothing. (A returned arrow: tsx's keepNames names an arrow bound to a name each time.)
 */
function cancelWatcher(res: NodeResponse) {
  return (cancel: () => void) => {
    if (res.writableFinished) return;
    if (res.destroyed) return cancel();
    res.on("close", () => res.writableFinished || cancel());
  };
}

/** Reads the JSON body, refusing more than `limit` bytes (413) and malformed JSON (400). */
async function readJson(req: NodeRequest, limit: number): Promise<JsonValue | undefined> {
  const text = await readBody(req, limit);
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw invalid("malformed JSON in request body");
  }
}

/**
 * Collects the body up to `limit` bytes. Past it we stop reading (no draining an endless upload)
 * and answer 413 with `connection: close`, so the socket is dropped once the answer is sent.
 */
function readBody(req: NodeRequest, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers["content-length"] ?? 0) > limit) return reject(tooLarge(limit));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.pause();
        return reject(tooLarge(limit));
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}

const tooLarge = (limit: number) =>
  new ApiError("payload_too_large", `request body exceeds ${limit} bytes`, { connection: "close" });
