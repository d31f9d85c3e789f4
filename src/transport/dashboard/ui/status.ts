import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Key } from "../../../../gen/apikeys/v1/api_key_service_pb.js";

/** "Expiring soon": within this long. */
export const EXPIRING_SOON_MS = 7 * 24 * 3_600_000;

export type KeyStatus = "active" | "expiring soon" | "expired" | "revoked" | "disabled";

/** A key's status as shown in the table (disabled when the lifecycle `enabled` field says so). */
export function statusOf(k: Key, now = Date.now()): KeyStatus {
  if (k.revokedAt) return "revoked";
  const expires = k.expiresAt ? timestampDate(k.expiresAt).getTime() : null;
  if (expires !== null && expires <= now) return "expired";
  if ((k as Key & { enabled?: boolean }).enabled === false) return "disabled";
  if (expires !== null && expires - now < EXPIRING_SOON_MS) return "expiring soon";
  return "active";
}
