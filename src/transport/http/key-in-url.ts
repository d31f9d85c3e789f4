import { ApiError } from "../../domain/errors.js";
import { KEY_LIKE } from "../../domain/key-format.js";

const CREDENTIAL_PARAMS = new Set(["api_key", "apikey", "key", "token", "access_token"]);

/**
 * SPEC §3: a key in the query string is refused before any other check and never used, since
 * URLs leak into logs, referrers and screenshots. Any value that looks like a key, or a parameter
 * named like a credential, counts.
 */
export function refuseKeyInUrl(url: URL): void {
  for (const [name, value] of url.searchParams) {
    if (CREDENTIAL_PARAMS.has(name.toLowerCase()) || KEY_LIKE.test(value) || KEY_LIKE.test(name)) {
      throw new ApiError(
        "key_in_url",
        "API keys must not be sent in the URL: use the Authorization: Bearer header (this key may have leaked; consider revoking it)",
      );
    }
  }
}
