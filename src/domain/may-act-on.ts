import { forbidden } from "./errors.js";
import { escalation } from "./scopes.js";
import type { Caller, KeyRecord } from "./types.js";

/** The writes a caller performs on an existing key (roll and disable included, when they exist). */
export type KeyWrite = "update" | "revoke" | "roll" | "disable" | "enable";

/**
 * No privilege escalation through any write (SPEC §2): the issuance rule, applied to an existing
 * key. A caller may update, revoke, roll or disable only keys whose scopes are a subset of its
 * own effective scopes and whose binding is the same or narrower, so a write-only key cannot
 * revoke, rename or revive the customer's unrestricted key. Internal callers may act on any key.
 *
 * Call it after the visibility check (a key the caller cannot see is 404, never 403). Returns
 * why the write is refused, or null when it is allowed.
 */
export function mayActOn(caller: Caller, key: KeyRecord, write: KeyWrite): string | null {
  if (caller.kind !== "key") return null;
  const bound = caller.key.instanceId;
  if (bound !== null && key.instanceId !== bound) {
    return key.instanceId === null
      ? `cannot ${write} a key that is not bound to an instance: this key is bound to instance ${bound}`
      : `cannot ${write} a key of another instance: this key is bound to instance ${bound}`;
  }
  const extra = escalation(caller.key.scopes, key.scopes);
  if (extra.length === 0) return null;
  return key.scopes.length === 0
    ? `cannot ${write} an unrestricted key: this key holds only ${JSON.stringify(caller.key.scopes)}`
    : `cannot ${write} a key with scopes this key does not hold: ${extra.join(", ")}`;
}

/** `mayActOn`, throwing 403 permission_denied with the reason. */
export function requireMayActOn(caller: Caller, key: KeyRecord, write: KeyWrite): void {
  const refused = mayActOn(caller, key, write);
  if (refused !== null) throw forbidden(refused);
}
