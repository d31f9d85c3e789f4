import type { Store } from "./store.js";
import type { AuditLog, NewAuditEvent } from "./audit-log.js";
import { forbidden, invalid, notFound } from "./errors.js";
import { EVENT_ID_PATTERN, KEY_ID_PATTERN, newKeyId } from "./ids.js";
import { type Environment, generateKey } from "./key-format.js";
import { decodePageToken, paginate } from "./page-token.js";
import { requireMayActOn } from "./may-act-on.js";
import { escalation, grants, SCOPE } from "./scopes.js";
import { type AuditEvent, type AuditTarget, type Caller, isActive, type KeyRecord, type Page, type RequestOrigin } from "./types.js";
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
}

export interface ListInput {
  pageSize: number;
  pageToken: string;
  includeInactive: boolean;
  instanceId: string | null;
}

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
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
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
    };
    await this.store.insertKey(key, this.audit.build(this.success("api_key.issued", caller, key, origin)));
    return { key, secret: generated.secret };
  }

  async list(caller: Caller, customerId: string, input: ListInput): Promise<Page<KeyRecord>> {
    requireScope(caller, SCOPE.keysRead);
    const limit = validPageSize(input.pageSize);
    const beforeId = decodePageToken(input.pageToken, KEY_ID_PATTERN);
    const bound = boundInstance(caller);
    if (bound !== null && input.instanceId !== null && input.instanceId !== bound) {
      return { items: [], nextPageToken: null };
    }
    const now = this.now();
    const page = await paginate(limit, (n) =>
      this.store.listKeys({
        customerId,
        instanceId: bound ?? input.instanceId,
        includeInactive: input.includeInactive,
        now,
        beforeId,
        limit: n,
      }),
    );
    return { items: page.items.map((k) => this.usage.overlay(k)), nextPageToken: page.nextPageToken };
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
    requireMayActOn(caller, current, "update");
    requireNoRevival(current, input, this.now());
    if (isNoOp(current, input)) return this.usage.overlay(current); // no write, no audit event
    const updated = await this.store.updateKey(customerId, id, { ...input, updatedAt: now }, (k) =>
      this.audit.build(this.success("api_key.updated", caller, k, origin)),
    );
    if (!updated) throw notFound();
    this.onChanged(updated);
    return this.usage.overlay(updated);
  }

  async revoke(caller: Caller, customerId: string, id: string, origin: RequestOrigin): Promise<KeyRecord> {
    requireScope(caller, SCOPE.keysWrite);
    requireMayActOn(caller, await this.visible(caller, customerId, id), "revoke");
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
      this.store.listAuditEvents({ customerId, instanceId: boundInstance(caller), action: input.action, targetId: input.targetId,
        since: input.since, until: input.until, beforeId, limit: n }),
    );
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

export const actorOf = (caller: Caller): AuditEvent["actor"] =>
  caller.kind === "key"
    ? { type: "key", keyId: caller.key.id, prefix: caller.key.prefix }
    : { type: "internal", name: caller.name };

/**
 * No change ever makes an inactive key active again (SPEC §2): a revoked or expired key's expiry
 * cannot be set (not even to its current value), so an old expired admin secret plus any write
 * key never regains admin.
 * (Name and metadata of an inactive key may still change; that revives nothing.)
 */
function requireNoRevival(key: KeyRecord, input: UpdateInput, now: number): void {
  if (input.expiresAt === undefined || isActive(key, now)) return;
  const state = key.revokedAt !== null ? "revoked" : "expired";
  throw invalid(`expires_at cannot be changed on a ${state} key: no change makes an inactive key active again; issue a new key instead`);
}

/** True when applying `input` would change nothing: such a PATCH writes nothing and no event. */
function isNoOp(key: KeyRecord, input: UpdateInput): boolean {
  return (
    (input.name === undefined || input.name === key.name) &&
    (input.expiresAt === undefined || input.expiresAt === key.expiresAt) &&
    (input.metadata === undefined || sameMap(input.metadata, key.metadata))
  );
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}

const targetOf = (k: KeyRecord): AuditTarget => ({ keyId: k.id, prefix: k.prefix, name: k.name });

const boundInstance = (caller: Caller) => (caller.kind === "key" ? caller.key.instanceId : null);

function requireScope(caller: Caller, scope: string): void {
  if (caller.kind === "key" && !grants(caller.key.scopes, [scope])) {
    throw forbidden(`this key lacks the scope ${scope}`);
  }
}
