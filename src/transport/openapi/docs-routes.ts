import { readFileSync } from "node:fs";
import type * as http from "node:http";
import { ApiError } from "../../domain/errors.js";
import { newRequestId, REQUEST_ID_HEADER } from "../../service/call-context.js";
import { type NodeRequest, type NodeResponse, sendError } from "../http/json-response.js";

const ROOT = new URL("../../../", import.meta.url);

/**
 * The public documents on `PORT`, served without authentication (they hold no secret and describe
 * only what anyone may call):
 * - `GET /v1/openapi.json`: the OpenAPI 3.1 document, the checked-in docs/openapi.json that
 *   `npm run generate` writes from the proto (and CI checks is up to date);
 * - `GET /v1/proto`: the proto of the RPC surface, proto/apikeys/v1/api_key_service.proto;
 * - `GET /docs`: the API reference page, Redoc (docs/redoc/, served from here, no CDN) rendering
 *   /v1/openapi.json, under a Content-Security-Policy that allows only this origin's script.
 * Files are read once, at the first request for them.
 */
/** A file of the repo, or a fixed text. */
type Asset = ({ file: string } | { text: string }) & { type: string; cache: string; csp?: string };

const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Redoc (styled-components) injects its styles at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zpk API reference</title>
<link rel="icon" href="data:,">
</head>
<body>
<redoc spec-url="/v1/openapi.json" hide-download-button="false"></redoc>
<script src="/docs/redoc.standalone.js"></script>
</body>
</html>
`;

const ASSETS: Record<string, Asset> = {
  "/v1/openapi.json": { file: "docs/openapi.json", type: "application/json", cache: "no-cache" },
  "/v1/proto": { file: "proto/apikeys/v1/api_key_service.proto", type: "text/plain; charset=utf-8", cache: "no-cache" },
  "/docs": { text: PAGE, type: "text/html; charset=utf-8", cache: "no-cache", csp: DOCS_CSP },
  "/docs/": { text: PAGE, type: "text/html; charset=utf-8", cache: "no-cache", csp: DOCS_CSP },
  "/docs/redoc.standalone.js": { file: "docs/redoc/redoc.standalone.js", type: "text/javascript; charset=utf-8", cache: "public, max-age=3600" },
};

const loaded = new Map<string, Buffer>();

function body(path: string): Buffer {
  let b = loaded.get(path);
  if (!b) {
    const asset = ASSETS[path]!;
    b = "text" in asset ? Buffer.from(asset.text) : readFileSync(new URL(asset.file, ROOT));
    loaded.set(path, b);
  }
  return b;
}

/** Answers a request for one of the documents and returns true, or returns false for any other path. */
export function serveDocs(req: NodeRequest, res: NodeResponse, url: URL): boolean {
  const asset = ASSETS[url.pathname];
  if (!asset) return false;
  const requestId = newRequestId();
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendError(res, new ApiError("method_not_allowed", `${req.method} is not allowed on ${url.pathname}; use GET`), new Headers({ allow: "GET, HEAD", [REQUEST_ID_HEADER]: requestId }));
    return true;
  }
  const content = body(url.pathname);
  const headers: Record<string, string> = {
    "content-type": asset.type,
    "content-length": String(content.length),
    "cache-control": asset.cache,
    "x-content-type-options": "nosniff",
    [REQUEST_ID_HEADER]: requestId,
  };
  if (asset.csp) headers["content-security-policy"] = asset.csp;
  (res as http.ServerResponse).writeHead(200, headers);
  if (req.method === "HEAD") res.end();
  else res.end(content);
  return true;
}
