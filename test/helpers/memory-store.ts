import type { AuditQuery, IdempotencyPatch, IdempotencyRecord, KeyListQuery, KeyPatch, Store, UsageDelta } from "../../src/domain/store.js";
import { alreadyExists, StorageUnavailableError } from "../../src/domain/errors.js";
import type { BucketState } from "../../src/domain/rate-limit/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitPolicy } from "../../src/domain/types.js";
import type { HourlyUsageDelta, HourlyUsageQuery, HourlyUsageRow, SessionRecord } from "../../src/domain/session-store.js";

/**
 * A Store held in one process's memory, for the fast unit layer (test/unit): domain and service
 * rules run over it without child processes, FerretDB or files. It passes the same contract suite
 * as the real stores (test/storage/memory-store.test.ts), so a rule that holds here holds on them.
 *
 * Test-only on purpose (not under src/storage): SPEC §8 names two stores, and a store that forgets
 * everything on exit and cannot be shared by WORKERS > 1, replicas or the `keys` CLI is not one a
 * deployment should be able to select. Records are copied in and out (structuredClone), as a real
 * store serialises them, so a caller that mutates what it got back changes nothing stored.
 *
 * `failing` makes every call throw StorageUnavailableError, as a store does during an outage,
 * so retry-on-failure paths (usage write-behind, audit buffering) can be tested too.
 */
export class MemoryStore implements Store {
  private readonly keys = new Map<string, KeyRecord>();
  private readonly byDigest = new Map<string, string>();
  private readonly events = new Map<string, AuditEvent>();
  private readonly buckets = new Map<string, BucketState>();
  private readonly policies = new Map<string, RateLimitPolicy>();
  private readonly idempotency = new Map<string, IdempotencyRecord>();
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly hourly = new Map<string, HourlyUsageDelta>();
  /** Counts of calls per method, for tests that check how many store steps a rule takes. */
  readonly calls = new Map<string, number>();
  failing = false;
  private closed = false;

  async insertKey(key: KeyRecord, event: AuditEvent): Promise<void> {
    this.enter("insertKey");
    if (this.byDigest.has(key.digest) || this.keys.has(key.id)) throw new Error("duplicate key");
    this.keys.set(key.id, clone(key));
    this.byDigest.set(key.digest, key.id);
    this.events.set(event.id, clone(event));
  }

  async insertKeys(keys: KeyRecord[], events: AuditEvent[]): Promise<void> {
    this.enter("insertKeys");
    const digests = new Set<string>();
    for (const k of keys) {
      if (this.byDigest.has(k.digest) || digests.has(k.digest)) throw alreadyExists(`a key with this digest exists already (${k.name})`);
      if (this.keys.has(k.id)) throw new Error("duplicate key id");
      digests.add(k.digest);
    }
    for (const k of keys) {
      this.keys.set(k.id, clone(k));
      this.byDigest.set(k.digest, k.id);
    }
    for (const e of events) this.events.set(e.id, clone(e));
  }

  async rollKey(
    successor: KeyRecord,
    predecessor: { expectExpiresAt: number | null; expiresAt: number | null; updatedAt: number },
    events: AuditEvent[],
  ): Promise<boolean> {
    this.enter("rollKey");
    const old = successor.rolledFrom === null ? undefined : this.keys.get(successor.rolledFrom);
    if (!old || old.customerId !== successor.customerId || old.rolledTo !== null || old.revokedAt !== null
      || old.expiresAt !== predecessor.expectExpiresAt) return false;
    if (this.byDigest.has(successor.digest)) throw new Error("duplicate digest");
    this.keys.set(old.id, { ...old, rolledTo: successor.id, expiresAt: predecessor.expiresAt, updatedAt: predecessor.updatedAt });
    this.keys.set(successor.id, clone(successor));
    this.byDigest.set(successor.digest, successor.id);
    for (const e of events) this.events.set(e.id, clone(e));
    return true;
  }

  async startPredecessorGrace(successor: KeyRecord, at: number): Promise<boolean> {
    this.enter("startPredecessorGrace");
    const current = this.keys.get(successor.id);
    if (!current || current.predecessorGraceMs === null || successor.rolledFrom === null) return false;
    const until = at + current.predecessorGraceMs;
    this.keys.set(current.id, { ...current, predecessorGraceMs: null, updatedAt: at });
    const old = this.keys.get(successor.rolledFrom);
    if (old && old.customerId === successor.customerId) {
      this.keys.set(old.id, { ...old, expiresAt: Math.min(old.expiresAt ?? until, until), updatedAt: at });
    }
    return true;
  }

  async countActiveKeys(customerId: string, now: number, atMost: number): Promise<number> {
    this.enter("countActiveKeys");
    const active = [...this.keys.values()].filter(
      (k) => k.customerId === customerId && k.revokedAt === null && (k.expiresAt === null || k.expiresAt > now),
    );
    return Math.min(active.length, atMost);
  }

  async purgeFailureEvents(beforeMs: number, limit: number): Promise<number> {
    this.enter("purgeFailureEvents");
    const old = [...this.events.values()]
      .filter((e) => e.outcome === "failure" && e.time < beforeMs)
      .sort((a, b) => a.time - b.time)
      .slice(0, limit);
    for (const e of old) this.events.delete(e.id);
    return old.length;
  }

  async countKeys(q: KeyListQuery): Promise<number> {
    this.enter("countKeys");
    return this.matching({ ...q, beforeId: null }).length;
  }

  async claimIdempotency(r: IdempotencyRecord): Promise<IdempotencyRecord | null> {
    this.enter("claimIdempotency");
    const existing = this.idempotency.get(r.id);
    if (existing) return clone(existing);
    this.idempotency.set(r.id, clone(r));
    return null;
  }

  async updateIdempotency(id: string, owner: string, patch: IdempotencyPatch): Promise<boolean> {
    this.enter("updateIdempotency");
    const r = this.idempotency.get(id);
    if (!r || r.owner !== owner) return false;
    this.idempotency.set(id, clone({ ...r, ...patch }));
    return true;
  }

  async deleteIdempotency(id: string, owner: string): Promise<void> {
    this.enter("deleteIdempotency");
    if (this.idempotency.get(id)?.owner === owner) this.idempotency.delete(id);
  }

  async purgeIdempotency(now: number): Promise<number> {
    this.enter("purgeIdempotency");
    let n = 0;
    for (const [id, r] of this.idempotency) if (r.expiresAt <= now) (this.idempotency.delete(id), n++);
    return n;
  }

  async findKeyByDigest(digest: string): Promise<KeyRecord | null> {
    this.enter("findKeyByDigest");
    const id = this.byDigest.get(digest);
    return id === undefined ? null : clone(this.keys.get(id)!);
  }

  async findKey(customerId: string, id: string): Promise<KeyRecord | null> {
    this.enter("findKey");
    const key = this.keys.get(id);
    return key && key.customerId === customerId ? clone(key) : null;
  }

  async listKeys(q: KeyListQuery): Promise<KeyRecord[]> {
    this.enter("listKeys");
    return this.matching(q).sort(newestFirst).slice(0, q.limit).map(clone);
  }

  /** The keys a listing's filters select (unsorted, unbounded). */
  private matching(q: KeyListQuery): KeyRecord[] {
    const wanted = Object.entries(q.metadata ?? {});
    return [...this.keys.values()]
      .filter((k) => k.customerId === q.customerId)
      .filter((k) => q.instanceId === null || k.instanceId === q.instanceId)
      .filter((k) => q.includeInactive || (k.revokedAt === null && (k.expiresAt === null || k.expiresAt > q.now)))
      .filter((k) => q.beforeId === null || k.id < q.beforeId)
      .filter((k) => wanted.every(([mk, mv]) => Object.hasOwn(k.metadata, mk) && k.metadata[mk] === mv));
  }

  async updateKey(customerId: string, id: string, patch: KeyPatch, event: (k: KeyRecord) => AuditEvent) {
    this.enter("updateKey");
    const current = this.keys.get(id);
    if (!current || current.customerId !== customerId) return null;
    const updated: KeyRecord = {
      ...current,
      name: patch.name ?? current.name,
      metadata: patch.metadata ?? current.metadata,
      expiresAt: patch.expiresAt === undefined ? current.expiresAt : patch.expiresAt,
      enabled: patch.enabled ?? current.enabled,
      updatedAt: patch.updatedAt,
    };
    const e = event(clone(updated)); // built first: an event that throws leaves the key unchanged
    this.keys.set(id, clone(updated));
    this.events.set(e.id, clone(e));
    return clone(updated);
  }

  async revokeKey(customerId: string, id: string, at: number, event: (k: KeyRecord) => AuditEvent) {
    this.enter("revokeKey");
    const current = this.keys.get(id);
    if (!current || current.customerId !== customerId) return null;
    if (current.revokedAt !== null) return { key: clone(current), changed: false };
    const revoked = { ...current, revokedAt: at, updatedAt: at };
    const e = event(clone(revoked));
    this.keys.set(id, revoked);
    this.events.set(e.id, clone(e));
    return { key: clone(revoked), changed: true };
  }

  async changedKeyDigests(sinceMs: number): Promise<string[]> {
    this.enter("changedKeyDigests");
    return [...this.keys.values()].filter((k) => k.updatedAt >= sinceMs).map((k) => k.digest);
  }

  async recordUsage(deltas: UsageDelta[]): Promise<void> {
    this.enter("recordUsage");
    for (const d of deltas) {
      const key = this.keys.get(d.keyId);
      if (!key) continue;
      key.totalRequests += d.count;
      key.lastUsedAt = Math.max(key.lastUsedAt ?? 0, d.lastUsedAt);
    }
  }

  async appendAuditEvents(events: AuditEvent[]): Promise<void> {
    this.enter("appendAuditEvents");
    for (const e of events) this.events.set(e.id, clone(e));
  }

  async listAuditEvents(q: AuditQuery): Promise<AuditEvent[]> {
    this.enter("listAuditEvents");
    return [...this.events.values()]
      .filter((e) => q.customerId === null || e.customerId === q.customerId)
      .filter((e) => q.instanceId === null || e.instanceId === q.instanceId)
      .filter((e) => q.action === null || e.action === q.action)
      .filter((e) => q.targetId === null || e.target?.keyId === q.targetId)
      .filter((e) => q.since === null || e.time >= q.since)
      .filter((e) => q.until === null || e.time < q.until)
      .filter((e) => q.beforeId === null || e.id < q.beforeId)
      .sort(newestFirst)
      .slice(0, q.limit)
      .map(clone);
  }

  async updateBucket<T>(
    customerId: string,
    defaults: RateLimitPolicy,
    decide: (state: BucketState | null, policy: RateLimitPolicy) => { next: BucketState; decision: T },
  ): Promise<T> {
    this.enter("updateBucket");
    const state = this.buckets.get(customerId);
    const policy = this.policies.get(customerId) ?? defaults;
    // One synchronous step: nothing else runs between the read and the write.
    const { next, decision } = decide(state ? { ...state } : null, { ...policy });
    this.buckets.set(customerId, { tokens: next.tokens, at: next.at });
    return decision;
  }

  async setRateLimitPolicy(customerId: string, policy: RateLimitPolicy): Promise<void> {
    this.enter("setRateLimitPolicy");
    this.policies.set(customerId, { capacity: policy.capacity, refillPerSecond: policy.refillPerSecond });
  }

  // Dashboard sessions, portal grants and hourly usage (src/domain/session-store.ts).
  async insertSession(session: SessionRecord, maxPerSubject: number): Promise<void> {
    this.enter("insertSession");
    this.sessions.set(session.digest, clone(session));
    const same = [...this.sessions.values()]
      .filter((s) => s.kind === session.kind && s.subject === session.subject)
      .sort((a, b) => b.createdAt - a.createdAt || (a.digest < b.digest ? 1 : -1));
    for (const old of same.slice(maxPerSubject)) this.sessions.delete(old.digest);
  }

  async findSession(digest: string): Promise<SessionRecord | null> {
    this.enter("findSession");
    const s = this.sessions.get(digest);
    return s && s.kind === "session" ? clone(s) : null;
  }

  async touchSession(digest: string, at: number): Promise<void> {
    this.enter("touchSession");
    const s = this.sessions.get(digest);
    if (s && at > s.lastSeenAt) s.lastSeenAt = at;
  }

  async deleteSession(digest: string): Promise<void> {
    this.enter("deleteSession");
    this.sessions.delete(digest);
  }

  async deleteSessionsOfKey(keyId: string): Promise<number> {
    this.enter("deleteSessionsOfKey");
    let n = 0;
    for (const s of [...this.sessions.values()]) if (s.keyId === keyId && this.sessions.delete(s.digest)) n++;
    return n;
  }

  async takeGrant(digest: string): Promise<SessionRecord | null> {
    this.enter("takeGrant");
    const s = this.sessions.get(digest);
    if (!s || s.kind !== "grant") return null;
    this.sessions.delete(digest);
    return clone(s);
  }

  async deleteExpiredSessions(now: number): Promise<void> {
    this.enter("deleteExpiredSessions");
    for (const s of [...this.sessions.values()]) if (s.expiresAt < now) this.sessions.delete(s.digest);
  }

  async recordHourlyUsage(deltas: HourlyUsageDelta[]): Promise<void> {
    this.enter("recordHourlyUsage");
    for (const d of deltas) {
      const id = `${d.customerId}|${d.hour}|${d.keyId}|${d.outcome}`;
      const cur = this.hourly.get(id);
      if (cur) cur.count += d.count;
      else this.hourly.set(id, clone(d));
    }
  }

  async hourlyUsage(q: HourlyUsageQuery): Promise<HourlyUsageRow[]> {
    this.enter("hourlyUsage");
    const sums = new Map<string, HourlyUsageRow>();
    for (const d of this.hourly.values()) {
      if (d.customerId !== q.customerId || d.hour < q.since || d.hour >= q.until) continue;
      if ((q.keyId !== null && d.keyId !== q.keyId) || (q.instanceId !== null && d.instanceId !== q.instanceId)) continue;
      const k = `${d.hour}|${d.outcome}`;
      const row = sums.get(k);
      if (row) row.count += d.count;
      else sums.set(k, { hour: d.hour, outcome: d.outcome, count: d.count });
    }
    return [...sums.values()].sort((a, b) => a.hour - b.hour || (a.outcome < b.outcome ? -1 : a.outcome > b.outcome ? 1 : 0));
  }

  async deleteHourlyUsageBefore(hour: number): Promise<void> {
    this.enter("deleteHourlyUsageBefore");
    for (const [id, d] of [...this.hourly]) if (d.hour < hour) this.hourly.delete(id);
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Every audit event stored, newest first (a test's view; not part of the port). */
  auditEvents(): AuditEvent[] {
    return [...this.events.values()].sort(newestFirst).map(clone);
  }

  private enter(method: string): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    if (this.closed) throw new StorageUnavailableError("storage is closed");
    if (this.failing) throw new StorageUnavailableError();
  }
}

const clone = <T>(v: T): T => structuredClone(v);
const newestFirst = (a: { id: string }, b: { id: string }) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
