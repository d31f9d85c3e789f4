import { KEY_LIKE } from "../../domain/key-format.js";
import type { NodeRequest, NodeResponse } from "./json-response.js";
import { sendProtocolError } from "./protocol-error.js";

const CREDENTIAL_PARAMS = new Set(["api_key", "apikey", "key", "token", "access_token"]);

export const KEY_IN_URL_MESSAGE =
  "API keys must not be sent in the URL: use the Authorization: Bearer header (this key may have leaked; consider revoking it)";

/** True when a query parameter looks like a key or is named like a credential. */
export function hasKeyInUrl(url: URL): boolean {
  for (const [name, value] of url.searchParams) {
    if (CREDENTIAL_PARAMS.has(name.toLowerCase()) || KEY_LIKE.test(value) || KEY_LIKE.test(name)) return true;
  }
  return false;
}

/**
 * SPEC §3: a key in the query string is refused before any other check and never used, since
 * URLs leak into logs, referrers and screenshots. Any value that looks like a key, or a parameter
 * named like a credential, counts. This runs in front of everything on `PORT` (REST, Connect,
 * gRPC, gRPC-Web, health, reflection, ops paths, the dashboard), before connect-node parses
 * anything: each protocol gets it in its own error form (invalid_argument on RPC paths, SPEC §3's
 * `key_in_url` body elsewhere).
 */
export function guardKeyInUrl(handler: (req: NodeRequest, res: NodeResponse) => void) {
  return (req: NodeRequest, res: NodeResponse) => {
    const raw = req.url ?? "/";
    const q = raw.indexOf("?");
    if (q !== -1) {
      let url: URL | null = null;
      try {
        url = new URL(raw, "http://localhost");
      } catch {
        /* the fallback answers a malformed URL */
      }
      if (url && hasKeyInUrl(url)) {
        const code = "key_in_url";
        return sendProtocolError(req, res, url.pathname, code, KEY_IN_URL_MESSAGE);
      }
    }
    handler(req, res);
  };
}
