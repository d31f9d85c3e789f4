import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  type AuditEvent as AuditEventMessage,
  AuditEventSchema,
  type Key,
  KeySchema,
} from "../../gen/apikeys/v1/api_key_service_pb.js";
import { hintOf, isActive, type AuditEvent, type KeyRecord } from "../domain/types.js";

/** Domain records -> protobuf messages (the domain has no protobuf imports). */
const ts = (ms: number | null): Timestamp | undefined => (ms === null ? undefined : timestampFromMs(ms));

export const msOf = (t: Timestamp | undefined): number | null => (t ? timestampMs(t) : null);

export function keyMessage(k: KeyRecord, now: number): Key {
  return create(KeySchema, {
    id: k.id,
    customerId: k.customerId,
    instanceId: k.instanceId ?? undefined,
    name: k.name,
    prefix: k.prefix,
    environment: k.environment,
    scopes: k.scopes,
    metadata: k.metadata,
    lastUsedAt: ts(k.lastUsedAt),
    totalRequests: BigInt(k.totalRequests),
    expiresAt: ts(k.expiresAt),
    createdAt: ts(k.createdAt),
    updatedAt: ts(k.updatedAt),
    revokedAt: ts(k.revokedAt),
    isActive: isActive(k, now),
    enabled: k.enabled,
    rolledFrom: k.rolledFrom ?? undefined,
    rolledTo: k.rolledTo ?? undefined,
    hint: hintOf(k),
  });
}

export function auditEventMessage(e: AuditEvent): AuditEventMessage {
  return create(AuditEventSchema, {
    id: e.id,
    customerId: e.customerId ?? undefined,
    action: e.action,
    actor: e.actor,
    target: e.target ?? undefined,
    outcome: e.outcome,
    reason: e.reason ?? undefined,
    ip: e.ip ?? undefined,
    userAgent: e.userAgent ?? undefined,
    requestId: e.requestId ?? undefined,
    time: ts(e.time),
    count: e.count,
    relatedKeyId: e.relatedKeyId ?? undefined,
  });
}
