import type { BucketState } from "./rate-limit/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitPolicy } from "./types.js";
import type { HourlyUsageStore, SessionStore } from "./session-store.js";

/**
 * The storage port of the domain: one implementation per store (SQLite embedded, MongoDB), all passing the
 * shared contract suite in test/storage. Stores hold data and provide atomic steps; every rule
 * (validation, scopes, visibility, bucket arithmetic) lives in the domain.
 *
 * A store throws `StorageUnavailableError` when it cannot do what was asked, and never leaves a
 * half-applied write visible.
 */
export interface Store extends SessionStore, HourlyUsageStore {
  /** Stores a new key and its `api_key.issued` event. */
  insertKey(key: KeyRecord, event: AuditEvent): Promise<void>;
  /**
   * Stores new keys and their events, all or none (batch issue, import), also if the process dies
   * mid-way. A digest that exists already throws DomainError `already_exists` and writes nothing.
   */
  insertKeys(keys: KeyRecord[], events: AuditEvent[]): Promise<void>;
  /**
   * Rolls a key, all or none: stores `successor` (whose `rolledFrom` names the predecessor) and
   * its events, and sets on the predecessor `rolledTo`, `expiresAt` and `updatedAt` — only if the
   * predecessor is still unrevoked, not rolled and has the expiry `expectExpiresAt`. False (and
   * nothing written) when it no longer is.
   */
  rollKey(
    successor: KeyRecord,
    predecessor: { expectExpiresAt: number | null; expiresAt: number | null; updatedAt: number },
    events: AuditEvent[],
  ): Promise<boolean>;
  /**
   * First use of a successor rolled with `grace_starts: first_use`: clears its
   * `predecessorGraceMs` and sets the predecessor's expiry to min(its expiry, at + grace), touching
   * `updatedAt` of both (so other processes' caches drop them). A repeat is a no-op: false.
   */
  startPredecessorGrace(successor: KeyRecord, at: number): Promise<boolean>;
  /** How many keys match the query's filters (ignoring `beforeId` and `limit`): an indexed count. */
  countKeys(query: KeyListQuery): Promise<number>;
  /**
   * Inserts the idempotency record if none has its id; otherwise inserts nothing and returns the
   * existing one.
   */
  claimIdempotency(record: IdempotencyRecord): Promise<IdempotencyRecord | null>;
  /** Updates the record only while `owner` still holds it; false otherwise. */
  updateIdempotency(id: string, owner: string, patch: IdempotencyPatch): Promise<boolean>;
  /** Deletes the record only while `owner` holds it. */
  deleteIdempotency(id: string, owner: string): Promise<void>;
  /** Deletes records expired at `now`; resolves to how many. */
  purgeIdempotency(now: number): Promise<number>;
  /** The key whose digest this is, of any customer, or null. */
  findKeyByDigest(digest: string): Promise<KeyRecord | null>;
  /** The customer's key with this id, or null. */
  findKey(customerId: string, id: string): Promise<KeyRecord | null>;
  /**
   * A page of the customer's keys, newest (highest id) first. The array is the caller's; its
   * records may be frozen (a store may hand the same ones to the next caller): copy to change.
   */
  listKeys(query: KeyListQuery): Promise<KeyRecord[]>;
  /**
   * How many of the customer's keys are active at `now` (not revoked, not expired), counting at
   * most `atMost` of them (an indexed query that stops there): the per-customer key bound.
   */
  countActiveKeys(customerId: string, now: number, atMost: number): Promise<number>;
  /** Applies `patch` and appends the event built from the updated key; null if no such key. */
  updateKey(
    customerId: string,
    id: string,
    patch: KeyPatch,
    event: (updated: KeyRecord) => AuditEvent,
  ): Promise<KeyRecord | null>;
  /**
   * Sets `revokedAt` if the key is not revoked yet, and only then appends the event.
   * Null if no such key; `changed` false when it was already revoked.
   */
  revokeKey(
    customerId: string,
    id: string,
    at: number,
    event: (revoked: KeyRecord) => AuditEvent,
  ): Promise<{ key: KeyRecord; changed: boolean } | null>;
  /**
   * Digests of keys whose `updatedAt` is at or after `sinceMs` (issued, updated or revoked since),
   * for caches in other processes to invalidate. Usage writes do not count as changes.
   */
  changedKeyDigests(sinceMs: number): Promise<string[]>;
  /** Adds usage counted in memory (write-behind): `$inc` total, `$max` last used. */
  recordUsage(deltas: UsageDelta[]): Promise<void>;
  appendAuditEvents(events: AuditEvent[]): Promise<void>;
  /** A page of audit events, newest (highest id) first. */
  listAuditEvents(query: AuditQuery): Promise<AuditEvent[]>;
  /**
   * Retention of failure events (audit-retention.ts): deletes at most `limit` events with
   * outcome "failure" and `time` before `beforeMs`, oldest first, through an index on
   * (outcome, time); resolves to how many it deleted. Success events are never deleted.
   */
  purgeFailureEvents(beforeMs: number, limit: number): Promise<number>;
  /**
   * Atomically reads the customer's bucket (null if none), lets `decide` compute the next state
   * and what to answer (the decisions of the requests charged in this step), stores the state and
   * resolves to that answer. Concurrent callers on any number of processes never both spend the
   * same tokens; a `decide` that throws leaves the bucket unchanged. `decide` may run more than
   * once (a store may retry its atomic step), so it must be pure. The domain makes at most one
   * call per customer at a time in a process (rate-limit/bucket-steps.ts), so a store needs no
   * queue of its own for buckets.
   */
  updateBucket<T>(
    customerId: string,
    defaults: RateLimitPolicy,
    decide: (state: BucketState | null, policy: RateLimitPolicy) => { next: BucketState; decision: T },
  ): Promise<T>;
  /** Sets the customer's policy, which `updateBucket` then uses instead of the defaults. */
  setRateLimitPolicy(customerId: string, policy: RateLimitPolicy): Promise<void>;
  /** Resolves when the store answers; throws StorageUnavailableError otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface KeyListQuery {
  customerId: string;
  /** Only keys bound to this instance. */
  instanceId: string | null;
  /** False: only keys that are neither revoked nor expired at `now`. */
  includeInactive: boolean;
  now: number;
  /** Only ids below this one (the last id of the previous page). */
  beforeId: string | null;
  /** Keys to read: in listKeys at most a page and one more (LIMITS.pageSizeMax + 1, page-token.ts pageOf). */
  limit: number;
  /** Only keys whose metadata holds all these entries. */
  metadata?: Record<string, string>;
}

/**
 * A remembered answer to a request made with an `Idempotency-Key` (idempotency.ts). `id` is a
 * digest of the scope and the idempotency key (the key itself is never stored); `response` is
 * the answer encrypted under a key derived from the idempotency key.
 */
export interface IdempotencyRecord {
  id: string;
  /** `customer:<uuid>` or `internal:<caller>`. */
  scope: string;
  /** The customer the request acted for (to look its keys up on recovery). */
  customerId: string;
  /** Digest of the RPC name and its canonical parameters. */
  paramsDigest: string;
  /** Random token of the call holding the record. */
  owner: string;
  /** pending: running; prepared: the answer is stored, its write may be under way; done. */
  state: "pending" | "prepared" | "done";
  response: Uint8Array | null;
  /** Ids of the keys the answer creates: present in the store iff the write happened. */
  keyIds: string[];
  createdAt: number;
  /** The holder is presumed dead after this (kill -9): another call may take over. */
  leaseUntil: number;
  expiresAt: number;
}

export type IdempotencyPatch = Partial<Pick<IdempotencyRecord, "state" | "response" | "keyIds">>;

export interface AuditQuery {
  /** Null: every customer's events and the customer-less ones (internal callers only). */
  customerId: string | null;
  /**
   * Only events about keys bound to this instance (`AuditEvent.instanceId`): what an
   * instance-bound caller may read (SPEC §7). Applied by the store's query, never by filtering
   * a page afterwards.
   */
  instanceId: string | null;
  action: string | null;
  targetId: string | null;
  /** Epoch ms, inclusive. */
  since: number | null;
  /** Epoch ms, exclusive. */
  until: number | null;
  beforeId: string | null;
  limit: number;
}

export interface KeyPatch {
  name?: string;
  metadata?: Record<string, string>;
  expiresAt?: number | null;
  enabled?: boolean;
  updatedAt: number;
}

export interface UsageDelta {
  keyId: string;
  lastUsedAt: number;
  count: number;
}
