import { forbidden, invalid } from "./errors.js";
import { escalation, grants } from "./scopes.js";
import { type AuditActor, type Caller, isActive, type KeyRecord } from "./types.js";
import { validUuid } from "./validation.js";

/**
 * Access rules (SPEC §2, §3, §7), in one place: which customer a call acts for (tenancy), which
 * instance's keys a caller sees, which scope a call needs, and what a key may grant. Key
 * management (key-manager.ts) applies them; nothing outside the domain decides any of them.
 */

/**
 * The customer a call acts for: a key's own (naming another one is refused), or the one an
 * internal caller names (required). `requested` is the request's `customer_id`, "" when absent.
 */
export function customerFor(caller: Caller, requested: string): string {
  if (caller.kind === "key") {
    if (requested !== "" && requested.toLowerCase() !== caller.key.customerId) {
      throw forbidden("customer_id is for internal callers: a key acts only for its own customer; omit it");
    }
    return caller.key.customerId;
  }
  if (requested === "") throw invalid("customer_id is required for internal callers");
  return validUuid(requested, "customer_id");
}

/**
 * The customer whose audit trail a call reads: as `customerFor`, except that an internal caller
 * naming no customer reads every customer's events and the customer-less ones (null).
 */
export function auditCustomerFor(caller: Caller, requested: string): string | null {
  return caller.kind === "internal" && requested === "" ? null : customerFor(caller, requested);
}

/** The instance a caller is bound to: it sees and manages only keys of that instance. */
export const boundInstance = (caller: Caller): string | null => (caller.kind === "key" ? caller.key.instanceId : null);

/** A key needs `scope` for the call (an unrestricted key has every scope; internal callers need none). */
export function requireScope(caller: Caller, scope: string): void {
  if (caller.kind === "key" && !grants(caller.key.scopes, [scope])) {
    throw forbidden(`this key lacks the scope ${scope}`);
  }
}

/**
 * No privilege escalation through issuance: a key issues only keys bound to its own instance (if
 * it is bound) with a subset of its scopes. Omitted fields are not inherited; the message says
 * which field to pass.
 */
export function requireNoEscalation(caller: Caller, wanted: { instanceId: string | null; scopes: string[] }): void {
  if (caller.kind !== "key") return;
  const bound = caller.key.instanceId;
  if (bound !== null && wanted.instanceId !== bound) {
    throw forbidden(
      wanted.instanceId === null
        ? `this key is bound to instance ${bound}: pass "instance_id": "${bound}" to issue a key`
        : "a key bound to an instance can only issue keys bound to the same instance",
    );
  }
  const extra = escalation(caller.key.scopes, wanted.scopes);
  if (extra.length > 0) {
    throw forbidden(
      wanted.scopes.length === 0
        ? `this key is restricted: pass "scopes" (a subset of ${JSON.stringify(caller.key.scopes)}) to issue a key`
        : `cannot grant scopes this key does not hold: ${extra.join(", ")}`,
    );
  }
}

/** The audit actor of a caller. */
export const actorOf = (caller: Caller): AuditActor =>
  caller.kind === "key"
    ? { type: "key", keyId: caller.key.id, prefix: caller.key.prefix }
    : { type: "internal", name: caller.name };

/** The writes a caller performs on an existing key (roll, disable and enable included). */
export type KeyWrite = "update" | "revoke" | "roll" | "disable" | "enable";

/**
 * No privilege escalation through any write (SPEC §2): the issuance rule, applied to an existing
 * key. A caller may update, revoke, roll or disable only keys whose scopes are a subset of its
 * own effective scopes and whose binding is the same or narrower, so a write-only key cannot
 * rename, revoke or revive the customer's unrestricted key. Internal callers may act on any key.
 *
 * Applied after the visibility check (a key the caller cannot see is 404, never 403). Returns
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

/**
 * No change ever makes an inactive key active again (SPEC §2): a revoked or expired key's expiry
 * cannot be set (not even to its current value), so an old expired admin secret plus any write
 * key never regains admin. 400 invalid_argument naming the field and the key's state. (Name and
 * metadata of an inactive key may still change: that revives nothing.)
 */
export function requireNoRevival(key: KeyRecord, change: { expiresAt?: number | null }, now: number): void {
  if (change.expiresAt === undefined || isActive(key, now)) return;
  const state = key.revokedAt !== null ? "revoked" : "expired";
  throw invalid(`expires_at cannot be changed on a ${state} key: no change makes an inactive key active again; issue a new key instead`);
}
