import {
  auditCustomerFor,
  actorOf,
  boundInstance,
  customerFor,
  requireCanActOn,
  requireNoEscalation,
  requireNoRevival,
  requireScope,
} from "./access.js";
import type { AuditLog, NewAuditEvent } from "./audit-log.js";
import { failedPrecondition, invalid, notFound } from "./errors.js";
import { EVENT_ID_PATTERN, KEY_ID_PATTERN, newKeyId } from "./ids.js";
import { generateKey } from "./key-format.js";
import { decodePageToken, pageOf } from "./page-token.js";
import { SCOPE } from "./scopes.js";
import type { Store } from "./store.js";
import { newKeyRecord, type AuditEvent, type AuditTarget, type Caller, type KeyRecord, type Page, type RequestOrigin } from "./types.js";
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
  /** With `enabled` in `fields`: false disables the key, true enables it again (issue 13). */
  enabled?: boolean;
}

export interface ListRequest {
  pageSize: number;
  pageToken: string;
  includeInactive: boolean;
  instanceId: string;
  /** Only keys whose metadata holds all these entries (issue 13); {} for no filter. */
  metadata?: Record<string, string>;
}

/**
 * A page of keys as `list` answers it: `items` as they will be once pending usage is written
 * (usage-recorder.ts), `stored` the same keys as the store answered them. `items[i]` is
 * `stored[i]` itself or a copy differing only in `totalRequests` and `lastUsedAt`, so what is
 * derived from a stored record's other fields (REST's list JSON, key-page-json.ts) can be kept
 * per stored record.
 */
export interface KeyListPage extends Page<KeyRecord> {
  stored: KeyRecord[];
  totalSize: number;
  /** When the page was read: the time its keys' `is_active` is told at. */
  now: number;
}

/**
 * A write computed but not yet made: `result` is the answer (secrets included) the caller gets
 * once `commit` has succeeded. Split so an idempotent call can store its answer before the write
 * (idempotency.ts): a retry after a crash between write and answer then gets the very same answer.
 */
export interface Prepared<T> {
  result: T;
  /** The keys `commit` creates: in the store iff the write happened. */
  keyIds: string[];
  commit: () => Promise<void>;
}

/** Most keys one BatchIssueKeys / ImportKeys call takes (issue 13). */
export const MAX_BATCH = 100;

/** A batch entry: an issue request, with the customer it names ("" for the batch's). */
export type BatchEntry = IssueRequest & { customerId: string };

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
const CHANGEABLE = ["name", "metadata", "expires_at", "enabled"];

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
    const prepared = this.prepareIssue(caller, requestedCustomer, req, origin);
    await prepared.commit();
    return prepared.result;
  }

  /** IssueKey, prepared (see Prepared). */
  prepareIssue(caller: Caller, requestedCustomer: string, req: IssueRequest, origin: RequestOrigin): Prepared<{ key: KeyRecord; secret: string }> {
    const customerId = customerFor(caller, requestedCustomer);
    const issued = this.newKey(caller, customerId, req);
    const event = this.audit.build(this.success("api_key.issued", caller, issued.key, origin));
    return {
      result: issued,
      keyIds: [issued.key.id],
      commit: async () => {
        await this.requireRoomFor(customerId, 1, this.now());
        await this.store.insertKey(issued.key, event);
      },
    };
  }

  /**
   * BatchIssueKeys: 1-100 keys, each checked exactly as one IssueKey; any refusal refuses the
   * batch (the message names the entry), and the store writes all or none.
   */
  prepareBatchIssue(caller: Caller, requestedCustomer: string, entries: BatchEntry[], origin: RequestOrigin): Prepared<{ key: KeyRecord; secret: string }[]> {
    const customerId = customerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.keysWrite);
    if (entries.length === 0 || entries.length > MAX_BATCH) throw invalid(`keys must have 1-${MAX_BATCH} entries`);
    const issued = entries.map((entry, i) =>
      inEntry(i, () => {
        if (entry.customerId !== "" && entry.customerId.toLowerCase() !== customerId) {
          throw invalid("customer_id must be empty or the batch's customer");
        }
        return this.newKey(caller, customerId, entry);
      }),
    );
    const keys = issued.map((x) => x.key);
    const events = keys.map((k) => this.audit.build(this.success("api_key.issued", caller, k, origin)));
    return {
      result: issued,
      keyIds: keys.map((k) => k.id),
      commit: async () => {
        await this.requireRoomFor(customerId, keys.length, this.now());
        await this.store.insertKeys(keys, events);
      },
    };
  }

  /** A new key for `req` after the issuance rules (fields, scope, expiry, no escalation); not stored. */
  private newKey(caller: Caller, customerId: string, req: IssueRequest): { key: KeyRecord; secret: string } {
    const name = validName(req.name);
    const instanceId = optionalUuid(req.instanceId, "instance_id");
    const scopes = validScopes(req.scopes);
    const environment = validEnvironment(req.environment);
    const metadata = validMetadata(req.metadata);
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    if (req.expiresAt !== null) validFutureTime(req.expiresAt, now);
    requireNoEscalation(caller, { instanceId, scopes });
    const generated = generateKey(environment);
    const key = newKeyRecord(
      {
        id: newKeyId(now),
        customerId,
        instanceId,
        name,
        prefix: generated.prefix,
        environment,
        scopes,
        metadata,
        digest: generated.digest,
        expiresAt: req.expiresAt,
        lastFour: generated.secret.slice(-4),
      },
      now,
    );
    return { key, secret: generated.secret };
  }

  async list(caller: Caller, requestedCustomer: string, req: ListRequest): Promise<KeyListPage> {
    const customerId = customerFor(caller, requestedCustomer);
    const instanceId = optionalUuid(req.instanceId, "instance_id");
    const metadata = validMetadata(req.metadata ?? {}, "metadata filter");
    requireScope(caller, SCOPE.keysRead);
    const limit = validPageSize(req.pageSize);
    const beforeId = decodePageToken(req.pageToken, KEY_ID_PATTERN);
    const bound = boundInstance(caller);
    const now = this.now();
    if (bound !== null && instanceId !== null && instanceId !== bound) {
      return { items: [], stored: [], nextPageToken: null, totalSize: 0, now };
    }
    // A page and one more (pageOf).
    const query = { customerId, instanceId: bound ?? instanceId, includeInactive: req.includeInactive, now, beforeId, metadata, limit: limit + 1 };
    // One store call when the page itself tells the total: a first page with no next page holds
    // every matching key (the common list). Otherwise the count runs alongside the page.
    const counted = beforeId !== null ? this.store.countKeys({ ...query, limit: 0 }) : null;
    counted?.catch(() => {}); // awaited below; not unhandled if the page fails first
    const page = pageOf(limit, await this.store.listKeys(query));
    const totalSize = counted
      ? await counted
      : page.nextPageToken === null
        ? page.items.length
        : await this.store.countKeys({ ...query, limit: 0 });
    return { items: page.items.map((k) => this.usage.overlay(k)), stored: page.items, nextPageToken: page.nextPageToken, totalSize, now };
  }

  async get(caller: Caller, requestedCustomer: string, id: string): Promise<KeyRecord> {
    const customerId = customerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.keysRead);
    return this.usage.overlay(await this.visible(caller, customerId, id));
  }

  async update(caller: Caller, requestedCustomer: string, id: string, req: UpdateRequest, origin: RequestOrigin) {
    const customerId = customerFor(caller, requestedCustomer);
    const unknown = req.fields.filter((f) => !CHANGEABLE.includes(f));
    if (unknown.length) throw invalid(`update_mask may name name, metadata, expires_at, enabled; not ${unknown.join(", ")}`);
    const changes = (f: string) => req.fields.includes(f);
    const patch = {
      ...(changes("name") && { name: validName(req.name) }),
      ...(changes("metadata") && { metadata: validMetadata(req.metadata) }),
      ...(changes("expires_at") && { expiresAt: req.expiresAt }),
      ...(changes("enabled") && { enabled: req.enabled ?? true }),
    };
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    if (patch.expiresAt != null) validFutureTime(patch.expiresAt, now);
    const current = await this.visible(caller, customerId, id);
    // Any change is a change of rights over the key (disabling is reversible, like roll): SPEC §2.
    requireCanActOn(caller, current, patch.enabled === undefined ? "update" : patch.enabled ? "enable" : "disable");
    if (patch.enabled !== undefined && current.revokedAt !== null) throw failedPrecondition(`key ${id} is revoked: it can be neither disabled nor enabled`);
    requireNoRevival(current, patch, this.now());
    const toggles = patch.enabled !== undefined && patch.enabled !== current.enabled;
    const others = !isNoOp(current, { ...patch, enabled: undefined });
    if (!toggles && !others) return this.usage.overlay(current); // a no-op: nothing written, no audit event
    const action = toggles ? (patch.enabled ? "api_key.enabled" : "api_key.disabled") : "api_key.updated";
    const updated = await this.store.updateKey(customerId, id, { ...patch, updatedAt: now }, (k) =>
      this.audit.build(this.success(action, caller, k, origin)),
    );
    if (!updated) throw notFound();
    // A PATCH that toggles `enabled` and changes other fields too is two events: the toggle (with
    // the change, above) and this one.
    if (toggles && others) await this.store.appendAuditEvents([this.audit.build(this.success("api_key.updated", caller, updated, origin))]);
    this.onChanged(updated);
    return this.usage.overlay(updated);
  }

  async revoke(caller: Caller, requestedCustomer: string, id: string, origin: RequestOrigin): Promise<KeyRecord> {
    const customerId = customerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.keysWrite);
    requireCanActOn(caller, await this.visible(caller, customerId, id), "revoke");
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
    return pageOf(limit, await this.store.listAuditEvents({ customerId, instanceId: boundInstance(caller), action: req.action || null,
      targetId: req.targetId || null, since: req.since, until: req.until, beforeId, limit: limit + 1 }));
  }

  /**
   * A customer's active keys are bounded (every resource a client can grow has a bound): issuing
   * `n` more must keep them at or under `maxActiveKeys`, else 400 failed_precondition saying so
   * and what to do. Disabled keys count (they can be enabled again). Counted by an indexed query that stops at the bound. Checked before the insert,
   * so concurrent issues of one customer can pass the bound by at most the issues in flight.
   */
  async requireRoomFor(customerId: string, n: number, now: number): Promise<void> {
    const active = await this.store.countActiveKeys(customerId, now, this.maxActiveKeys);
    if (active + n > this.maxActiveKeys) {
      throw failedPrecondition(
        `this customer has ${active} active keys, the most allowed (${this.maxActiveKeys}, MAX_ACTIVE_KEYS_PER_CUSTOMER): revoke keys it no longer uses before issuing more`,
      );
    }
  }

  /** The key if the caller may see it; otherwise not_found, never 403 (no enumeration). */
  async visible(caller: Caller, customerId: string, id: string): Promise<KeyRecord> {
    if (!KEY_ID_PATTERN.test(id)) throw notFound();
    const key = await this.store.findKey(customerId, id);
    const bound = boundInstance(caller);
    if (!key || (bound !== null && key.instanceId !== bound)) throw notFound();
    return key;
  }

  success(action: AuditEvent["action"], caller: Caller, key: KeyRecord, origin: RequestOrigin): NewAuditEvent {
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

export const targetOf = (k: KeyRecord): AuditTarget => ({ keyId: k.id, prefix: k.prefix, name: k.name });

/** Runs the check of batch entry `i`, naming the entry in any refusal (`keys[3]: …`). */
export function inEntry<T>(i: number, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error) e.message = `keys[${i}]: ${e.message}`;
    throw e;
  }
}

/** True when applying `change` would change nothing: such a PATCH writes nothing and no event. */
function isNoOp(
  key: KeyRecord,
  change: { name?: string; metadata?: Record<string, string>; expiresAt?: number | null; enabled?: boolean },
): boolean {
  return (
    (change.name === undefined || change.name === key.name) &&
    (change.expiresAt === undefined || change.expiresAt === key.expiresAt) &&
    (change.metadata === undefined || sameMap(change.metadata, key.metadata)) &&
    (change.enabled === undefined || change.enabled === key.enabled)
  );
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}
