import {
  auditCustomerFor,
  actorOf,
  boundInstance,
  customerFor,
  requireMayActOn,
  requireNoEscalation,
  requireNoRevival,
  requireScope,
} from "./access.js";
import type { AuditLog, NewAuditEvent } from "./audit-log.js";
import { invalid, notFound } from "./errors.js";
import { EVENT_ID_PATTERN, KEY_ID_PATTERN, newKeyId } from "./ids.js";
import { generateKey } from "./key-format.js";
import { decodePageToken, paginate } from "./page-token.js";
import { SCOPE } from "./scopes.js";
import type { Store } from "./store.js";
import type { AuditEvent, AuditTarget, Caller, KeyRecord, Page, RequestOrigin } from "./types.js";
import type { UsageRecorder } from "./usage-recorder.js";
import {
  optionalUuid,
  validEnvironment,
  validFutureTime,
  validMetadata,
  validName,
  validPageSize,
  validScopes,
} from "./validation.js";

/**
 * The requests of key management as the RPCs carry them, before validation: "" (and empty lists
 * and maps) mean "not given", times are epoch ms or null. Every field is validated here, in the
 * domain, and only here; each failure names the field.
 */
export interface IssueRequest {
  name: string;
  instanceId: string;
  scopes: string[];
  expiresAt: number | null;
  environment: string;
  metadata: Record<string, string>;
}

/** A change: `fields` names the fields to change (an update mask); `expiresAt: null` clears expiry. */
export interface UpdateRequest {
  fields: string[];
  name: string;
  metadata: Record<string, string>;
  expiresAt: number | null;
}

export interface ListRequest {
  pageSize: number;
  pageToken: string;
  includeInactive: boolean;
  instanceId: string;
}

export interface AuditListRequest {
  pageSize: number;
  pageToken: string;
  action: string;
  targetId: string;
  since: number | null;
  until: number | null;
}

/** MAX_ACTIVE_KEYS_PER_CUSTOMER's default. */
export const DEFAULT_MAX_ACTIVE_KEYS = 1000;

/** The fields a change may name (SPEC §3: not scopes, not the binding). */
const CHANGEABLE = ["name", "metadata", "expires_at"];

/**
 * Key management (SPEC §2, §3, §7): issue, list, get, update, revoke and the audit trail, for a
 * caller (credentials decide who calls) and the `customer_id` its request named ("" for none).
 * Each method validates its request, then applies the access rules of access.ts (tenancy,
 * instance binding, scopes, no escalation) in a fixed order, then calls the store.
 */
export class KeyManager {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly usage: UsageRecorder,
    private readonly now: () => number,
    /** Told about every key this process changes, so its cache drops the old record at once. */
    private readonly onChanged: (key: KeyRecord) => void = () => {},
    /** Most active (neither revoked nor expired) keys a customer may hold (MAX_ACTIVE_KEYS_PER_CUSTOMER). */
    private readonly maxActiveKeys = DEFAULT_MAX_ACTIVE_KEYS,
  ) {}

  async issue(caller: Caller, requestedCustomer: string, req: IssueRequest, origin: RequestOrigin) {
    const customerId = customerFor(caller, requestedCustomer);
    const name = validName(req.name);
    const instanceId = optionalUuid(req.instanceId, "instance_id");
    const scopes = validScopes(req.scopes);
    const environment = validEnvironment(req.environment);
    const metadata = validMetadata(req.metadata);
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    if (req.expiresAt !== null) validFutureTime(req.expiresAt, now);
    requireNoEscalation(caller, { instanceId, scopes });
    await this.requireRoomFor(customerId, 1, now);
    const generated = generateKey(environment);
    const key: KeyRecord = {
      id: newKeyId(now),
      customerId,
      instanceId,
      name,
      prefix: generated.prefix,
      environment,
      scopes,
      metadata,
      digest: generated.digest,
      lastUsedAt: null,
      totalRequests: 0,
      expiresAt: req.expiresAt,
      createdAt: now,
      updatedAt: now,
      revokedAt: null,
    };
    await this.store.insertKey(key, this.audit.build(this.success("api_key.issued", caller, key, origin)));
    return { key, secret: generated.secret };
  }

  async list(caller: Caller, requestedCustomer: string, req: ListRequest): Promise<Page<KeyRecord>> {
    const customerId = customerFor(caller, requestedCustomer);
    const instanceId = optionalUuid(req.instanceId, "instance_id");
    requireScope(caller, SCOPE.keysRead);
    const limit = validPageSize(req.pageSize);
    const beforeId = decodePageToken(req.pageToken, KEY_ID_PATTERN);
    const bound = boundInstance(caller);
    if (bound !== null && instanceId !== null && instanceId !== bound) {
      return { items: [], nextPageToken: null };
    }
    const now = this.now();
    const page = await paginate(limit, (n) =>
      this.store.listKeys({
        customerId,
        instanceId: bound ?? instanceId,
        includeInactive: req.includeInactive,
        now,
        beforeId,
        limit: n,
      }),
    );
    return { items: page.items.map((k) => this.usage.overlay(k)), nextPageToken: page.nextPageToken };
  }

  async get(caller: Caller, requestedCustomer: string, id: string): Promise<KeyRecord> {
    const customerId = customerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.keysRead);
    return this.usage.overlay(await this.visible(caller, customerId, id));
  }

  async update(caller: Caller, requestedCustomer: string, id: string, req: UpdateRequest, origin: RequestOrigin) {
    const customerId = customerFor(caller, requestedCustomer);
    const unknown = req.fields.filter((f) => !CHANGEABLE.includes(f));
    if (unknown.length) throw invalid(`update_mask may name name, metadata, expires_at; not ${unknown.join(", ")}`);
    const changes = (f: string) => req.fields.includes(f);
    const patch = {
      ...(changes("name") && { name: validName(req.name) }),
      ...(changes("metadata") && { metadata: validMetadata(req.metadata) }),
      ...(changes("expires_at") && { expiresAt: req.expiresAt }),
    };
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    if (patch.expiresAt != null) validFutureTime(patch.expiresAt, now);
    const current = await this.visible(caller, customerId, id);
    requireMayActOn(caller, current, "update");
    requireNoRevival(current, patch, this.now());
    if (isNoOp(current, patch)) return this.usage.overlay(current); // nothing written, no audit event
    const updated = await this.store.updateKey(customerId, id, { ...patch, updatedAt: now }, (k) =>
      this.audit.build(this.success("api_key.updated", caller, k, origin)),
    );
    if (!updated) throw notFound();
    this.onChanged(updated);
    return this.usage.overlay(updated);
  }

  async revoke(caller: Caller, requestedCustomer: string, id: string, origin: RequestOrigin): Promise<KeyRecord> {
    const customerId = customerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.keysWrite);
    requireMayActOn(caller, await this.visible(caller, customerId, id), "revoke");
    const result = await this.store.revokeKey(customerId, id, this.now(), (k) =>
      this.audit.build(this.success("api_key.revoked", caller, k, origin)),
    );
    if (!result) throw notFound();
    this.onChanged(result.key);
    return this.usage.overlay(result.key);
  }

  async listAudit(caller: Caller, requestedCustomer: string, req: AuditListRequest): Promise<Page<AuditEvent>> {
    const customerId = auditCustomerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.auditRead);
    if (req.since !== null && req.until !== null && req.since >= req.until) {
      throw invalid("since must be before until");
    }
    const limit = validPageSize(req.pageSize);
    const beforeId = decodePageToken(req.pageToken, EVENT_ID_PATTERN);
    return paginate(limit, (n) =>
      this.store.listAuditEvents({ customerId, instanceId: boundInstance(caller), action: req.action || null, targetId: req.targetId || null,
        since: req.since, until: req.until, beforeId, limit: n }),
    );
  }

  /**
   * A customer's active keys are bounded (every resource a client can grow has a bound): issuing
   * `n` more must keep them at or under `maxActiveKeys`, else 400 invalid_argument saying so and
   * what to do. Counted by an indexed query that stops at the bound. Checked before the insert,
   * so concurrent issues of one customer can pass the bound by at most the issues in flight.
   */
  async requireRoomFor(customerId: string, n: number, now: number): Promise<void> {
    const active = await this.store.countActiveKeys(customerId, now, this.maxActiveKeys);
    if (active + n > this.maxActiveKeys) {
      throw invalid(
        `this customer has ${active} active keys, the most allowed (${this.maxActiveKeys}, MAX_ACTIVE_KEYS_PER_CUSTOMER): revoke keys it no longer uses before issuing more`,
      );
    }
  }

  /** The key if the caller may see it; otherwise not_found, never 403 (no enumeration). */
  private async visible(caller: Caller, customerId: string, id: string): Promise<KeyRecord> {
    if (!KEY_ID_PATTERN.test(id)) throw notFound();
    const key = await this.store.findKey(customerId, id);
    const bound = boundInstance(caller);
    if (!key || (bound !== null && key.instanceId !== bound)) throw notFound();
    return key;
  }

  private success(action: AuditEvent["action"], caller: Caller, key: KeyRecord, origin: RequestOrigin): NewAuditEvent {
    return {
      customerId: key.customerId,
      action,
      actor: actorOf(caller),
      target: targetOf(key),
      instanceId: key.instanceId ?? boundInstance(caller),
      outcome: "success",
      reason: null,
      ...origin,
    };
  }
}

const targetOf = (k: KeyRecord): AuditTarget => ({ keyId: k.id, prefix: k.prefix, name: k.name });

/** True when applying `change` would change nothing: such a PATCH writes nothing and no event. */
function isNoOp(key: KeyRecord, change: { name?: string; metadata?: Record<string, string>; expiresAt?: number | null }): boolean {
  return (
    (change.name === undefined || change.name === key.name) &&
    (change.expiresAt === undefined || change.expiresAt === key.expiresAt) &&
    (change.metadata === undefined || sameMap(change.metadata, key.metadata))
  );
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}
