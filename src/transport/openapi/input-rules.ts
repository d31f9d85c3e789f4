import { ENVIRONMENTS } from "../../domain/key-format.js";
import { MAX_BATCH } from "../../domain/key-manager.js";
import { GRACE } from "../../domain/roll.js";
import { LIMITS } from "../../domain/validation.js";

/**
 * The input rules of src/domain/validation.ts that JSON Schema can state, by request field name,
 * for the request schemas of the OpenAPI document. The numbers are the domain's own (`LIMITS`,
 * `ENVIRONMENTS`), so a changed limit changes the document. The descriptors carry no rules, and
 * a client (or a fuzzer) that knows them sends requests that pass; rules a schema cannot say
 * ("in the future", "a subset of the caller's scopes") stay in the descriptions. The server may
 * accept more than stated here.
 */
export const INPUT_RULES: Record<string, Record<string, unknown>> = {
  name: { minLength: 1, maxLength: LIMITS.nameChars, pattern: "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$" },
  // "" is "not given" (validation.ts optionalUuid; public callers leave customer_id empty).
  customer_id: { anyOf: [{ format: "uuid" }, { const: "" }] },
  instance_id: { anyOf: [{ format: "uuid" }, { const: "" }] },
  // "" is the default (live / now).
  environment: { enum: [...ENVIRONMENTS, ""] },
  grace_starts: { enum: ["now", "first_use", ""] },
  grace_seconds: { minimum: 0, maximum: GRACE.maxSeconds },
  // BatchIssueKeysRequest.keys
  keys: { minItems: 1, maxItems: MAX_BATCH },
  scopes: { maxItems: LIMITS.scopes, items: { type: "string", minLength: 1, maxLength: LIMITS.scopeChars, pattern: "^[A-Za-z0-9_.:/*-]+$" } },
  metadata: {
    maxProperties: LIMITS.metadataEntries,
    propertyNames: { minLength: 1, maxLength: LIMITS.metadataKeyChars },
    additionalProperties: { type: "string", maxLength: LIMITS.metadataValueChars },
  },
  page_size: { minimum: 0, maximum: LIMITS.pageSizeMax },
};

/** Body fields a request must carry (validation.ts `validName`: an issued key needs a name), by request message. */
export const REQUIRED_BODY_FIELDS: Record<string, readonly string[]> = {
  "apikeys.v1.IssueKeyRequest": ["name"],
};
