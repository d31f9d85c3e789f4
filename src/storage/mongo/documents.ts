import type { Environment } from "../../domain/key-format.js";
import type { AuditEvent, KeyRecord } from "../../domain/types.js";

/**
 * Document <-> record mapping of the MongoDB store. `_id` is the key or event id (ULID-based, so
 * `_id` order is creation order); times are BSON dates; every field is always present (null when
 * unset) so equality filters on null behave the same on MongoDB and FerretDB.
 */
export interface KeyDoc {
  _id: string;
  customer_id: string;
  instance_id: string | null;
  name: string;
  prefix: string;
  environment: string;
  scopes: string[];
  metadata: Record<string, string>;
  digest: string;
  last_used_at: Date | null;
  total_requests: number;
  expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
  revoked_at: Date | null;
  /** Fields of issue 13; absent on documents written before it (read with defaults). */
  enabled?: boolean;
  rolled_from?: string | null;
  rolled_to?: string | null;
  predecessor_grace_ms?: number | null;
  last_four?: string;
  /** `["<name>","<value>"]` (JSON) per metadata entry: metadata filters match these, whatever the name. */
  metadata_pairs?: string[];
  /**
   * Set while the key belongs to a multi-document write (batch, import, roll) not yet committed
   * (pending-writes.ts): such a key is invisible. Null or absent once committed.
   */
  pending_write?: string | null;
}

export interface AuditDoc {
  _id: string;
  customer_id: string | null;
  action: string;
  actor: AuditEvent["actor"];
  target: AuditEvent["target"];
  target_id: string | null;
  /** Absent on events written before it existed: those match no instance filter. */
  instance_id?: string | null;
  outcome: string;
  reason: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  time: Date;
  count: number;
  related_key_id?: string | null;
}

/** One version of a customer's bucket: `_id` is `<customer_id>:<v>`; the highest `v` is current. */
export interface BucketDoc {
  _id: string;
  customer_id: string;
  v: number;
  tokens: number;
  at: number;
  /** When this version was written; old versions are deleted after a minute. */
  created: Date;
}

/**
 * Usage counted for one key under one writer slot (`_id` = `<key id>:w<slot>`, writer-slot.ts;
 * before that, `<key id>:<random hex>` per process start); a key's usage is the sum.
 */
export interface UsageDoc {
  _id: string;
  key_id: string;
  total_requests: number;
  last_used_at: Date | null;
}

/** A customer's rate-limit override (SetRateLimit); `_id` is the customer id. */
export interface PolicyDoc {
  _id: string;
  capacity: number;
  refill_per_second: number;
}

const date = (ms: number | null) => (ms === null ? null : new Date(ms));
const ms = (d: Date | null) => (d === null ? null : d.getTime());

export const keyToDoc = (k: KeyRecord): KeyDoc => ({
  _id: k.id,
  customer_id: k.customerId,
  instance_id: k.instanceId,
  name: k.name,
  prefix: k.prefix,
  environment: k.environment,
  scopes: k.scopes,
  metadata: k.metadata,
  digest: k.digest,
  last_used_at: date(k.lastUsedAt),
  total_requests: k.totalRequests,
  expires_at: date(k.expiresAt),
  created_at: new Date(k.createdAt),
  updated_at: new Date(k.updatedAt),
  revoked_at: date(k.revokedAt),
  enabled: k.enabled,
  rolled_from: k.rolledFrom,
  rolled_to: k.rolledTo,
  predecessor_grace_ms: k.predecessorGraceMs,
  last_four: k.lastFour,
  metadata_pairs: metadataPairs(k.metadata),
  pending_write: null,
});

export const metadataPairs = (m: Record<string, string>) => Object.entries(m).map((e) => JSON.stringify(e));

export const docToKey = (d: KeyDoc): KeyRecord => ({
  id: d._id,
  customerId: d.customer_id,
  instanceId: d.instance_id,
  name: d.name,
  prefix: d.prefix,
  environment: d.environment as Environment,
  scopes: d.scopes,
  metadata: d.metadata,
  digest: d.digest,
  lastUsedAt: ms(d.last_used_at),
  totalRequests: d.total_requests,
  expiresAt: ms(d.expires_at),
  createdAt: d.created_at.getTime(),
  updatedAt: d.updated_at.getTime(),
  revokedAt: ms(d.revoked_at),
  enabled: d.enabled ?? true,
  rolledFrom: d.rolled_from ?? null,
  rolledTo: d.rolled_to ?? null,
  predecessorGraceMs: d.predecessor_grace_ms ?? null,
  lastFour: d.last_four ?? "",
});

export const eventToDoc = (e: AuditEvent): AuditDoc => ({
  _id: e.id,
  customer_id: e.customerId,
  action: e.action,
  actor: e.actor,
  target: e.target,
  target_id: e.target?.keyId ?? null,
  instance_id: e.instanceId,
  outcome: e.outcome,
  reason: e.reason,
  ip: e.ip,
  user_agent: e.userAgent,
  request_id: e.requestId,
  time: new Date(e.time),
  count: e.count,
  related_key_id: e.relatedKeyId ?? null,
});

export const docToEvent = (d: AuditDoc): AuditEvent => ({
  id: d._id,
  customerId: d.customer_id,
  action: d.action as AuditEvent["action"],
  actor: d.actor,
  target: d.target,
  instanceId: d.instance_id ?? null,
  outcome: d.outcome as AuditEvent["outcome"],
  reason: d.reason,
  ip: d.ip,
  userAgent: d.user_agent,
  requestId: d.request_id,
  time: d.time.getTime(),
  count: d.count,
  ...(d.related_key_id != null && { relatedKeyId: d.related_key_id }),
});

/** An idempotency record (store.ts IdempotencyRecord); `_id` is its digest id. */
export interface IdempotencyDoc {
  _id: string;
  scope: string;
  customer_id: string;
  params_digest: string;
  owner: string;
  state: string;
  response: Buffer | null;
  key_ids: string[];
  created_at: Date;
  lease_until: Date;
  expires_at: Date;
}

/** A multi-document write in progress (pending-writes.ts). */
export interface PendingWriteDoc {
  _id: string;
  /** batch: committed by `state`; roll: committed once the predecessor's rolled_to names key_ids[0]. */
  kind: "batch" | "roll";
  state: "pending" | "committed";
  customer_id: string;
  key_ids: string[];
  event_ids: string[];
  /** roll: the predecessor's id. */
  predecessor_id: string | null;
  created: Date;
}
