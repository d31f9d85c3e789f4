import { forbidden } from "./errors.js";
import { escalation } from "./scopes.js";
import type { Caller, KeyRecord } from "./types.js";

/**
 * SPEC §2: a caller may act on (update, roll, disable, revoke) only a key whose scopes are a
 * subset of its own effective scopes and whose binding is the same or narrower, so that no key
 * can, say, roll a more powerful key and receive its successor's secret. Internal callers may act
 * on every key. Visibility (another customer, another instance: 404) is checked before this.
 */
export function canActOn(caller: Caller, target: KeyRecord): boolean {
  if (caller.kind === "internal") return true;
  const bound = caller.key.instanceId;
  if (bound !== null && target.instanceId !== bound) return false;
  return escalation(caller.key.scopes, target.scopes).length === 0;
}

/** canActOn, or 403 saying why. */
export function requireCanActOn(caller: Caller, target: KeyRecord, action: string): void {
  if (!canActOn(caller, target)) {
    throw forbidden(`this key cannot ${action} a key with scopes or binding beyond its own`);
  }
}
