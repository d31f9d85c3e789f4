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

/** Usage counted by one process for one key (`_id` = `<key id>:<writer>`); a key's usage is the sum. */
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
});

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
});
