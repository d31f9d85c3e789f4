import type { Environment } from "./key-format.js";

/** A key as stored: everything but the secret, which is never stored (only its digest). */
export interface KeyRecord {
  id: string;
  customerId: string;
  instanceId: string | null;
  name: string;
  prefix: string;
  environment: Environment;
  scopes: string[];
  metadata: Record<string, string>;
  digest: string;
  lastUsedAt: number | null;
  totalRequests: number;
  expiresAt: number | null;
  createdAt: number;
  updatedAt: number;
  revokedAt: number | null;
  /** False while disabled (reversible, unlike revocation). */
  enabled: boolean;
  /** RollKey links: the predecessor / successor key id. */
  rolledFrom: string | null;
  rolledTo: string | null;
  /**
   * On a successor rolled with `grace_starts: first_use`, until its first use: the grace (ms) its
   * predecessor gets from that moment (see roll.ts). Null otherwise.
   */
  predecessorGraceMs: number | null;
  /** The key's last 4 characters (checksum, no secret entropy) for the display hint; "" if unknown. */
  lastFour: string;
}

/** What a new key is given; everything else starts fresh (see {@link newKeyRecord}). */
export type NewKeyFields = Pick<KeyRecord, "id" | "customerId" | "instanceId" | "name" | "prefix" | "environment" | "scopes" | "metadata" | "digest" | "expiresAt" | "lastFour"> &
  Partial<Pick<KeyRecord, "rolledFrom" | "predecessorGraceMs">>;

/** A key as it is stored the moment it is made (issue, batch, roll, import): unused, active, unlinked. */
export function newKeyRecord(fields: NewKeyFields, now: number): KeyRecord {
  return {
    lastUsedAt: null,
    totalRequests: 0,
    createdAt: now,
    updatedAt: now,
    revokedAt: null,
    enabled: true,
    rolledFrom: null,
    rolledTo: null,
    predecessorGraceMs: null,
    ...fields,
  };
}

export const isExpired = (k: KeyRecord, now: number) => k.expiresAt !== null && k.expiresAt <= now;
/** Revoked and expired are final; disabled is not, but a disabled key is not active either. */
export const isActive = (k: KeyRecord, now: number) => k.revokedAt === null && !isExpired(k, now) && k.enabled;
/** `<prefix>…<last 4>` (issue 13): identifies a key without revealing it. */
export const hintOf = (k: KeyRecord) => `${k.prefix}…${k.lastFour}`;

/** Who performs a call: a customer's key, or an internal service holding the internal token. */
export type Caller =
  | { kind: "key"; key: KeyRecord; /** Audited as this actor instead of the key (portal sessions). */ actor?: AuditActor }
  | { kind: "internal"; name: string };

export type AuditAction =
  | "api_key.issued"
  | "api_key.updated"
  | "api_key.revoked"
  | "api_key.rolled"
  | "api_key.disabled"
  | "api_key.enabled"
  | "api_key.imported"
  | "auth.failed"
  | "rate_limit.exceeded"
  | "rate_limit.updated";

export interface AuditActor {
  type: "key" | "internal" | "anonymous";
  keyId?: string;
  prefix?: string;
  name?: string;
}

/** Denormalised so the event outlives the key it points at (SPEC §7). */
export interface AuditTarget {
  keyId: string;
  prefix: string;
  name: string;
}

export interface AuditEvent {
  id: string;
  customerId: string | null;
  action: AuditAction;
  actor: AuditActor;
  target: AuditTarget | null;
  /**
   * The instance of the key the event is about (the target's binding, else the actor's), null
   * when neither is bound. Not on the wire: it lets an instance-bound reader's query select only
   * its instance's events in the store (SPEC §7), so pagination stays exact.
   */
  instanceId: string | null;
  outcome: "success" | "failure";
  reason: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  time: number;
  count: number;
  /** A second key the event is about (api_key.rolled: the new key); absent = none. */
  relatedKeyId?: string | null;
}

/** Where a request came from, for the audit trail and logs. */
export interface RequestOrigin {
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
}

export interface RateLimitPolicy {
  capacity: number;
  refillPerSecond: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  retryAfterSeconds: number;
  resetAt: number;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string | null;
}
