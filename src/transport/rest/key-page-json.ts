import { hintOf, isActive, type KeyRecord } from "../../domain/types.js";
import type { KeyRecordPage } from "../../service/api-key-service.js";

/**
 * `GET /v1/api-keys`'s body built straight from the domain's records: the very JSON that
 * `present(ListKeysResponseSchema, <ListKeys response>)` renders (SPEC §3's shape: snake_case,
 * proto field order, unset optionals `null`, timestamps ISO 8601 with ms, 64-bit counts as numbers),
 * without a protobuf message per key and a descriptor walk per field, which were most of a list
 * call's cost (issue 17). test/unit/key-page-json.test.ts holds both renderings equal for records
 * with every optional field set and unset; a field added to `Key` fails it until added here.
 */
export function keyPageJson(page: KeyRecordPage): string {
  const data = new Array<ReturnType<typeof keyJson>>(page.items.length);
  for (let i = 0; i < page.items.length; i++) data[i] = keyJson(page.items[i]!, page.now);
  return JSON.stringify({ data, next_page_token: page.nextPageToken, total_size: page.totalSize });
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** One `Key` object, fields in the proto's order. */
function keyJson(k: KeyRecord, now: number) {
  return {
    id: k.id,
    customer_id: k.customerId,
    instance_id: k.instanceId,
    name: k.name,
    prefix: k.prefix,
    environment: k.environment,
    scopes: k.scopes,
    metadata: k.metadata,
    last_used_at: iso(k.lastUsedAt),
    total_requests: k.totalRequests,
    expires_at: iso(k.expiresAt),
    created_at: iso(k.createdAt),
    updated_at: iso(k.updatedAt),
    revoked_at: iso(k.revokedAt),
    is_active: isActive(k, now),
    enabled: k.enabled,
    rolled_from: k.rolledFrom,
    rolled_to: k.rolledTo,
    hint: hintOf(k),
  };
}
