import type { Store } from "./store.js";
import { requireCanActOn } from "./access.js";
import type { AuditLog, NewAuditEvent } from "./audit-log.js";
import { failedPrecondition, forbidden, invalid, notFound } from "./errors.js";
import { EVENT_ID_PATTERN, KEY_ID_PATTERN, newKeyId } from "./ids.js";
import { type Environment, generateKey } from "./key-format.js";
import { decodePageToken, paginate } from "./page-token.js";
import { escalation, grants, SCOPE } from "./scopes.js";
import { isExpired, type AuditEvent, type AuditTarget, type Caller, type KeyRecord, type Page, type RequestOrigin } from "./types.js";
import type { UsageRecorder } from "./usage-recorder.js";
import { validFutureTime, validPageSize } from "./validation.js";

/** A validated issue request (transport-independent). */
export interface IssueInput {
  name: string;
  instanceId: string | null;
  scopes: string[];
  expiresAt: number | null;
  environment: Environment;
  metadata: Record<string, string>;
}

/** A validated update: only the fields present change; `expiresAt: null` clears expiry. */
export interface UpdateInput {
  name?: string;
  metadata?: Record<string, string>;
  expiresAt?: number | null;
  /** false disables the key, true enables it again (issue 13). */
  enabled?: boolean;
}

export interface ListInput {
  pageSize: number;
  pageToken: string;
  includeInactive: boolean;
  instanceId: string | null;
  /** Only keys whose metadata holds all these entries. */
  metadata?: Record<string, string>;
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

export interface AuditListInput {
  pageSize: number;
  pageToken: string;
  action: string | null;
  targetId: string | null;
  since: number | null;
  until: number | null;
}

/**
 * Key management (SPEC §2, §3, §7): every rule about who may see, issue, change or revoke which
 * key. `customerId` is the customer being acted for (a key's own, or the one an internal caller
 * named); `null` in `listAudit` means "every customer" and is only reachable by internal callers.
 */
export class KeyManager {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly usage: UsageRecorder,
    private readonly now: () => number,
    /** Told about every key this process changes, so its cache drops the old record at once. */
    private readonly onChanged: (key: KeyRecord) => void = () => {},
  ) {}

  async issue(caller: Caller, customerId: string, input: IssueInput, origin: RequestOrigin) {
    const prepared = this.prepareIssue(caller, customerId, input, origin);
    await prepared.commit();
    return prepared.result;
  }

  /** IssueKey, prepared (see Prepared). */
  prepareIssue(caller: Caller, customerId: string, input: IssueInput, origin: RequestOrigin): Prepared<{ key: KeyRecord; secret: string }> {
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    const issued = this.newKey(caller, customerId, input, now);
    const event = this.audit.build(this.success("api_key.issued", caller, issued.key, origin));
    return { result: issued, keyIds: [issued.key.id], commit: () => this.store.insertKey(issued.key, event) };
  }

  /**
   * BatchIssueKeys: 1-100 keys, each checked exactly as one IssueKey; any refusal refuses the
   * batch (the message names the entry), and the store writes all or none.
   */
  prepareBatchIssue(caller: Caller, customerId: string, inputs: IssueInput[], origin: RequestOrigin): Prepared<{ key: KeyRecord; secret: string }[]> {
    requireScope(caller, SCOPE.keysWrite);
    if (inputs.length === 0 || inputs.length > MAX_BATCH) throw invalid(`keys must have 1-${MAX_BATCH} entries`);
    const now = this.now();
    const issued = inputs.map((input, i) => {
      try {
        return this.newKey(caller, customerId, input, now);
      } catch (e) {
        if (e instanceof Error) e.message = `keys[${i}]: ${e.message}`;
        throw e;
      }
    });
    const keys = issued.map((x) => x.key);
    const events = keys.map((k) => this.audit.build(this.success("api_key.issued", caller, k, origin)));
    return { result: issued, keyIds: keys.map((k) => k.id), commit: () => this.store.insertKeys(keys, events) };
  }

  /** A new key for `input` after the issuance rules (expiry, binding, no escalation); not stored. */
  private newKey(caller: Caller, customerId: string, input: IssueInput, now: number): { key: KeyRecord; secret: string } {
    if (input.expiresAt !== null) validFutureTime(input.expiresAt, now);
    if (caller.kind === "key") {
      const bound = caller.key.instanceId;
      if (bound !== null && input.instanceId !== bound) {
        throw forbidden(
          input.instanceId === null
            ? `this key is bound to instance ${bound}: pass "instance_id": "${bound}" to issue a key`
            : "a key bound to an instance can only issue keys bound to the same instance",
        );
      }
      const extra = escalation(caller.key.scopes, input.scopes);
      if (extra.length > 0) {
        throw forbidden(
          input.scopes.length === 0
            ? `this key is restricted: pass "scopes" (a subset of ${JSON.stringify(caller.key.scopes)}) to issue a key`
            : `cannot grant scopes this key does not hold: ${extra.join(", ")}`,
        );
      }
    }
    const generated = generateKey(input.environment);
    const key: KeyRecord = {
      id: newKeyId(now),
      customerId,
      instanceId: input.instanceId,
      name: input.name,
      prefix: generated.prefix,
      environment: input.environment,
      scopes: input.scopes,
      metadata: input.metadata,
      digest: generated.digest,
      lastUsedAt: null,
      totalRequests: 0,
      expiresAt: input.expiresAt,
      createdAt: now,
      updatedAt: now,
      revokedAt: null,
      enabled: true,
      rolledFrom: null,
      rolledTo: null,
      predecessorGraceMs: null,
      lastFour: generated.secret.slice(-4),
    };
    return { key, secret: generated.secret };
  }

  async list(caller: Caller, customerId: string, input: ListInput): Promise<Page<KeyRecord> & { totalSize: number }> {
    requireScope(caller, SCOPE.keysRead);
    const limit = validPageSize(input.pageSize);
    const beforeId = decodePageToken(input.pageToken, KEY_ID_PATTERN);
    const bound = boundInstance(caller);
    if (bound !== null && input.instanceId !== null && input.instanceId !== bound) {
      return { items: [], nextPageToken: null, totalSize: 0 };
    }
    const now = this.now();
    const query = {
      customerId,
      instanceId: bound ?? input.instanceId,
      includeInactive: input.includeInactive,
      now,
      beforeId,
      metadata: input.metadata ?? {},
    };
    const [page, totalSize] = await Promise.all([
      paginate(limit, (n) => this.store.listKeys({ ...query, limit: n })),
      this.store.countKeys({ ...query, limit: 0 }),
    ]);
    return { items: page.items.map((k) => this.usage.overlay(k)), nextPageToken: page.nextPageToken, totalSize };
  }

  async get(caller: Caller, customerId: string, id: string): Promise<KeyRecord> {
    requireScope(caller, SCOPE.keysRead);
    return this.usage.overlay(await this.visible(caller, customerId, id));
  }

  async update(caller: Caller, customerId: string, id: string, input: UpdateInput, origin: RequestOrigin) {
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    if (input.expiresAt != null) validFutureTime(input.expiresAt, now);
    const current = await this.visible(caller, customerId, id);
    const toggles = input.enabled !== undefined && input.enabled !== current.enabled;
    if (input.enabled !== undefined) {
      // Disabling is reversible, so it is a change of rights over the key like roll (SPEC §2).
      requireCanActOn(caller, current, input.enabled ? "enable" : "disable");
      if (current.revokedAt !== null) throw failedPrecondition(`key ${id} is revoked: it can be neither disabled nor enabled`);
    }
    const others = input.name !== undefined || input.metadata !== undefined || input.expiresAt !== undefined;
    const action = toggles ? (input.enabled ? "api_key.enabled" : "api_key.disabled") : "api_key.updated";
    const updated = await this.store.updateKey(customerId, id, { ...input, updatedAt: now }, (k) =>
      this.audit.build(this.success(action, caller, k, origin)),
    );
    if (!updated) throw notFound();
    // A PATCH that toggles `enabled` and changes other fields too is two events: the toggle (with
    // the change, above) and this one.
    if (toggles && others) await this.store.appendAuditEvents([this.audit.build(this.success("api_key.updated", caller, updated, origin))]);
    this.onChanged(updated);
    return this.usage.overlay(updated);
  }

  async revoke(caller: Caller, customerId: string, id: string, origin: RequestOrigin): Promise<KeyRecord> {
    requireScope(caller, SCOPE.keysWrite);
    await this.visible(caller, customerId, id);
    const result = await this.store.revokeKey(customerId, id, this.now(), (k) =>
      this.audit.build(this.success("api_key.revoked", caller, k, origin)),
    );
    if (!result) throw notFound();
    this.onChanged(result.key);
    return this.usage.overlay(result.key);
  }

  async listAudit(caller: Caller, customerId: string | null, input: AuditListInput): Promise<Page<AuditEvent>> {
    requireScope(caller, SCOPE.auditRead);
    if (input.since !== null && input.until !== null && input.since >= input.until) {
      throw invalid("since must be before until");
    }
    const limit = validPageSize(input.pageSize);
    const beforeId = decodePageToken(input.pageToken, EVENT_ID_PATTERN);
    return paginate(limit, (n) =>
      this.store.listAuditEvents({ customerId, action: input.action, targetId: input.targetId,
        since: input.since, until: input.until, beforeId, limit: n }),
    );
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
      outcome: "success",
      reason: null,
      ...origin,
    };
  }
}

export const actorOf = (caller: Caller): AuditEvent["actor"] =>
  caller.kind === "key"
    ? { type: "key", keyId: caller.key.id, prefix: caller.key.prefix }
    : { type: "internal", name: caller.name };

export const targetOf = (k: KeyRecord): AuditTarget => ({ keyId: k.id, prefix: k.prefix, name: k.name });

const boundInstance = (caller: Caller) => (caller.kind === "key" ? caller.key.instanceId : null);

export function requireScope(caller: Caller, scope: string): void {
  if (caller.kind === "key" && !grants(caller.key.scopes, [scope])) {
    throw forbidden(`this key lacks the scope ${scope}`);
  }
}
