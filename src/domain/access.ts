import { failedPrecondition, forbidden, invalid } from "./errors.js";
import { escalation, grants } from "./scopes.js";
import { type AuditActor, type Caller, isExpired, type KeyRecord } from "./types.js";
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
    ? (caller.actor ?? { type: "key", keyId: caller.key.id, prefix: caller.key.prefix })
    : { type: "internal", name: caller.name };

/**
 * SPEC §2: no privilege escalation through any write. A caller may act on a key (update, revoke,
 * roll, disable, enable) only if the key's scopes are a subset of its own effective scopes and
 * its binding is the same or narrower: the issuance rule, applied to an existing key, so that no
 * key can rename, revoke, revive or roll (and receive the successor's secret of) a more powerful
 * key. Internal callers may act on every key. Visibility (another customer, another instance:
 * 404, never 403) is checked before this. The one rule every write path calls.
 */
export function canActOn(caller: Caller, target: KeyRecord): boolean {
  return refusalToActOn(caller, target, "act on") === null;
}

/** canActOn, or 403 permission_denied naming the reason (`action` as the message says it: "revoke"). */
export function requireCanActOn(caller: Caller, target: KeyRecord, action: string): void {
  const refused = refusalToActOn(caller, target, action);
  if (refused !== null) throw forbidden(refused);
}

/** Why `caller` may not `action` `target`, or null when it may. */
function refusalToActOn(caller: Caller, target: KeyRecord, action: string): string | null {
  if (caller.kind === "internal") return null;
  const bound = caller.key.instanceId;
  if (bound !== null && target.instanceId !== bound) {
    return target.instanceId === null
      ? `this key cannot ${action} a key that is not bound to an instance: it is bound to instance ${bound}`
      : `this key cannot ${action} a key of another instance: it is bound to instance ${bound}`;
  }
  const extra = escalation(caller.key.scopes, target.scopes);
  if (extra.length === 0) return null;
  return target.scopes.length === 0
    ? `this key cannot ${action} an unrestricted key: it holds only ${JSON.stringify(caller.key.scopes)}`
    : `this key cannot ${action} a key with scopes it does not hold: ${extra.join(", ")}`;
}

/**
 * No change ever makes an inactive key active again (SPEC §2): a revoked or expired key's expiry
 * cannot be set (not even to its current value), so an old expired admin secret plus any write
 * key never regains admin: 400 failed_precondition naming the field and the key's state. (Its
 * name and metadata may still change; that revives nothing. A disabled key is not inactive in
 * this sense: disabling is reversible, and its expiry may change.)
 */
export function requireNoRevival(key: KeyRecord, change: { expiresAt?: number | null }, now: number): void {
  if (change.expiresAt === undefined) return;
  const state = key.revokedAt !== null ? "revoked" : isExpired(key, now) ? "expired" : null;
  if (state === null) return;
  throw failedPrecondition(`expires_at cannot be changed on a ${state} key: no change makes an inactive key active again; issue a new key instead`);
}
