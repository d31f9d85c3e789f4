import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { alreadyExists, StorageUnavailableError } from "../../domain/errors.js";
import { keyRecordBytes } from "../../domain/key-record-bytes.js";
import type { BucketState } from "../../domain/rate-limit/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitPolicy } from "../../domain/types.js";
import type { AuditQuery, IdempotencyPatch, IdempotencyRecord, KeyListQuery, KeyPatch, Store, UsageDelta } from "../../domain/store.js";
import { type AuditRow, eventToRow, frozenKey, KEY_COLUMNS, type KeyTuple, keyToRow, rowToEvent, rowToKey } from "./rows.js";
import { ADDED_COLUMNS, ADDED_INDEXES, SCHEMA } from "./schema.js";
import { SqliteDashboard } from "./sqlite-dashboard.js";
import { LIST_CACHE_ENTRIES, ListCache } from "./list-cache.js";
import type { HourlyUsageDelta, HourlyUsageQuery, HourlyUsageRow, SessionRecord } from "../../domain/session-store.js";

/**
 * The embedded default store: one SQLite file (`<dataDir>/zpk.sqlite`) in WAL mode, shared by the
 * server's processes and the `keys` CLI. better-sqlite3 is synchronous; each method is one
 * transaction, so nothing is ever half-written, and `BEGIN IMMEDIATE` serialises writers across
 * processes (a busy writer is waited for up to `busy_timeout`).
 */
/**
 * JS numbers are bound as REAL; a REAL LIMIT made each list query ~4x slower (measured: 55 µs
 * instead of 16 µs for one row on these machines), so the bound value is cast to INTEGER.
 */
const BOUND_LIMIT = "CAST(@limit AS INTEGER)";

const BUSY_TIMEOUT_MS = 2000;

/**
 * Switches the file to WAL. On a new file this takes an exclusive lock, and when another process
 * is opening the same new file at that moment (the workers of `WORKERS` > 1 on a fresh DATA_DIR)
 * SQLite answers SQLITE_BUSY at once, without waiting `busy_timeout`: so it is retried, briefly.
 * Once the file is in WAL mode the pragma takes no lock.
 */
function enableWal(db: Database.Database): void {
  const giveUpAt = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.pragma("journal_mode = WAL");
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== "SQLITE_BUSY" || Date.now() >= giveUpAt) throw e;
      sleepSync(5 + Math.random() * 20);
    }
  }
}

/** The constructor is synchronous (so is better-sqlite3), hence a blocking wait. */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts;
  /** Sessions, portal grants and hourly usage (sqlite-dashboard.ts). */
  private readonly dashboard: SqliteDashboard;
  /** Recent listKeys answers, while the file is unchanged (list-cache.ts). */
  private readonly lists: ListCache<KeyRecord>;

  constructor(dataDir: string) {
    const db = guard(() => {
      mkdirSync(dataDir, { recursive: true });
      const d = new Database(join(dataDir, "zpk.sqlite"));
      d.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`); // better-sqlite3 waits synchronously: keep it short
      enableWal(d);
      d.pragma("synchronous = NORMAL");
      d.exec(SCHEMA);
      addMissingColumns(d);
      for (const index of ADDED_INDEXES) d.exec(index);
      return d;
    });
    this.db = db;
    this.dashboard = new SqliteDashboard(db, (fn) => this.tx(fn));
    this.lists = new ListCache<KeyRecord>(db, listedKeyBytes, guard);
    this.stmts = {
      insertKey: db.prepare(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (@id, @customer_id, @instance_id, @name,
        @prefix, @environment, @scopes, @metadata, @digest, @last_used_at, @total_requests,
        @expires_at, @created_at, @updated_at, @revoked_at, @enabled, @rolled_from, @rolled_to,
        @predecessor_grace_ms, @last_four)`),
      insertEvent: db.prepare(`INSERT INTO audit_events (id, customer_id, action, actor, target_key_id,
        target, outcome, reason, ip, user_agent, request_id, time, count, related_key_id, instance_id) VALUES
        (@id, @customer_id, @action, @actor, @target_key_id, @target, @outcome, @reason, @ip,
        @user_agent, @request_id, @time, @count, @related_key_id, @instance_id)`),
      byDigest: db.prepare<[string], KeyTuple>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE digest = ?`).raw(true),
      byId: db.prepare<[string, string], KeyTuple>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE customer_id = ? AND id = ?`).raw(true),
      update: db.prepare(`UPDATE api_keys SET name = @name, metadata = @metadata,
        expires_at = @expires_at, enabled = @enabled, updated_at = @updated_at WHERE id = @id`),
      rollPredecessor: db.prepare(`UPDATE api_keys SET rolled_to = @rolled_to, expires_at = @expires_at,
        updated_at = @updated_at WHERE customer_id = @customer_id AND id = @id AND rolled_to IS NULL
        AND revoked_at IS NULL AND expires_at IS @expect_expires_at`),
      clearGrace: db.prepare(`UPDATE api_keys SET predecessor_grace_ms = NULL, updated_at = @at
        WHERE id = @id AND predecessor_grace_ms IS NOT NULL`),
      startGrace: db.prepare(`UPDATE api_keys SET expires_at = min(coalesce(expires_at, @until), @until),
        updated_at = @at WHERE customer_id = @customer_id AND id = @id`),
      claimIdem: db.prepare(`INSERT INTO idempotency VALUES (@id, @scope, @customer_id, @params_digest,
        @owner, @state, @response, @key_ids, @created_at, @lease_until, @expires_at) ON CONFLICT (id) DO NOTHING`),
      getIdem: db.prepare<[string], IdemRow>(`SELECT * FROM idempotency WHERE id = ?`),
      deleteIdem: db.prepare(`DELETE FROM idempotency WHERE id = ? AND owner = ?`),
      purgeIdem: db.prepare(`DELETE FROM idempotency WHERE expires_at <= ?`),
      revoke: db.prepare(`UPDATE api_keys SET revoked_at = @at, updated_at = @at
        WHERE customer_id = @customer_id AND id = @id AND revoked_at IS NULL`),
      usage: db.prepare(`UPDATE api_keys SET total_requests = total_requests + @count,
        last_used_at = max(coalesce(last_used_at, 0), @last_used_at) WHERE id = @id`),
      bucket: db.prepare<[string], { tokens: number | null; at: number | null; capacity: number | null; refill_per_second: number | null }>(
        `SELECT tokens, at, capacity, refill_per_second FROM rate_limits WHERE customer_id = ?`),
      saveBucket: db.prepare(`INSERT INTO rate_limits (customer_id, tokens, at) VALUES (@customer_id, @tokens, @at)
        ON CONFLICT (customer_id) DO UPDATE SET tokens = excluded.tokens, at = excluded.at`),
      savePolicy: db.prepare(`INSERT INTO rate_limits (customer_id, capacity, refill_per_second)
        VALUES (@customer_id, @capacity, @refill) ON CONFLICT (customer_id) DO UPDATE SET
        capacity = excluded.capacity, refill_per_second = excluded.refill_per_second`),
      purgeFailures: db.prepare(`DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events
        WHERE outcome = 'failure' AND time < @before ORDER BY time LIMIT CAST(@limit AS INTEGER))`),
      countActive: db.prepare<[object], { n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM api_keys
        WHERE customer_id = @customer_id AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)
        LIMIT CAST(@limit AS INTEGER))`),
      changed: db.prepare<[number], { digest: string }>(`SELECT digest FROM api_keys WHERE updated_at >= ?`),
      ping: db.prepare(`INSERT INTO probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`),
    };
  }

  async insertKey(key: KeyRecord, event: AuditEvent): Promise<void> {
    this.tx(() => {
      this.stmts.insertKey.run(keyToRow(key));
      this.stmts.insertEvent.run(eventToRow(event));
    });
  }

  async insertKeys(keys: KeyRecord[], events: AuditEvent[]): Promise<void> {
    this.tx(() => {
      for (const k of keys) {
        try {
          this.stmts.insertKey.run(keyToRow(k));
        } catch (e) {
          if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE" && /digest/.test(String(e))) {
            throw alreadyExists(`a key with this digest exists already (${k.name})`);
          }
          throw e;
        }
      }
      for (const e of events) this.stmts.insertEvent.run(eventToRow(e));
    });
  }

  async rollKey(
    successor: KeyRecord,
    predecessor: { expectExpiresAt: number | null; expiresAt: number | null; updatedAt: number },
    events: AuditEvent[],
  ): Promise<boolean> {
    return this.tx(() => {
      const changed = this.stmts.rollPredecessor.run({
        customer_id: successor.customerId,
        id: successor.rolledFrom,
        rolled_to: successor.id,
        expires_at: predecessor.expiresAt,
        updated_at: predecessor.updatedAt,
        expect_expires_at: predecessor.expectExpiresAt,
      }).changes === 1;
      if (!changed) return false;
      this.stmts.insertKey.run(keyToRow(successor));
      for (const e of events) this.stmts.insertEvent.run(eventToRow(e));
      return true;
    });
  }

  async startPredecessorGrace(successor: KeyRecord, at: number): Promise<boolean> {
    if (successor.predecessorGraceMs === null || successor.rolledFrom === null) return false;
    const { predecessorGraceMs: grace, rolledFrom } = successor;
    return this.tx(() => {
      if (this.stmts.clearGrace.run({ id: successor.id, at }).changes !== 1) return false;
      this.stmts.startGrace.run({ customer_id: successor.customerId, id: rolledFrom, until: at + grace, at });
      return true;
    });
  }

  async countKeys(q: KeyListQuery): Promise<number> {
    const { where, params } = keyFilter({ ...q, beforeId: null });
    const sql = `SELECT count(*) AS n FROM api_keys WHERE ${where}`;
    return guard(() => (this.prepared<{ n: number }>(sql).get(params) as { n: number }).n);
  }

  async claimIdempotency(r: IdempotencyRecord): Promise<IdempotencyRecord | null> {
    return this.tx(() => {
      const inserted = this.stmts.claimIdem.run({
        id: r.id, scope: r.scope, customer_id: r.customerId, params_digest: r.paramsDigest, owner: r.owner,
        state: r.state, response: r.response ? Buffer.from(r.response) : null, key_ids: JSON.stringify(r.keyIds),
        created_at: r.createdAt, lease_until: r.leaseUntil, expires_at: r.expiresAt,
      }).changes === 1;
      if (inserted) return null;
      return rowToIdem(this.stmts.getIdem.get(r.id)!);
    });
  }

  async updateIdempotency(id: string, owner: string, patch: IdempotencyPatch): Promise<boolean> {
    const sets: string[] = [];
    const params: Record<string, unknown> = { id, owner };
    if (patch.state !== undefined) (sets.push("state = @state"), (params.state = patch.state));
    if (patch.response !== undefined) (sets.push("response = @response"), (params.response = patch.response && Buffer.from(patch.response)));
    if (patch.keyIds !== undefined) (sets.push("key_ids = @key_ids"), (params.key_ids = JSON.stringify(patch.keyIds)));
    if (sets.length === 0) return true;
    const sql = `UPDATE idempotency SET ${sets.join(", ")} WHERE id = @id AND owner = @owner`;
    return guard(() => this.prepared(sql).run(params).changes === 1);
  }

  async deleteIdempotency(id: string, owner: string): Promise<void> {
    guard(() => this.stmts.deleteIdem.run(id, owner));
  }

  async purgeIdempotency(now: number): Promise<number> {
    return guard(() => this.stmts.purgeIdem.run(now).changes);
  }

  async findKeyByDigest(digest: string): Promise<KeyRecord | null> {
    const row = guard(() => this.stmts.byDigest.get(digest));
    return row ? rowToKey(row) : null;
  }

  async findKey(customerId: string, id: string): Promise<KeyRecord | null> {
    const row = guard(() => this.stmts.byId.get(customerId, id));
    return row ? rowToKey(row) : null;
  }

  async listKeys(q: KeyListQuery): Promise<KeyRecord[]> {
    // The answer's identity: everything the rows depend on but the time (see ListCache). The SQL
    // is made only when the rows are read: a list answered from the cache builds no query text.
    const query = listQueryKey(q);
    const version = await this.lists.fileVersion();
    // The array is the caller's (a copy: a frozen one would take V8's slow path in every slice);
    // its records are shared with the next caller of the same list, hence frozen. (The reader is
    // an unnamed argument: tsx names a closure bound to a name, a defineProperty per call.)
    return guard(() =>
      this.lists.rows(
        version,
        query,
        q.now,
        () => {
          const { where, params } = keyFilter(q);
          const sql = `SELECT ${KEY_COLUMNS} FROM api_keys WHERE ${where} ORDER BY id DESC LIMIT ${BOUND_LIMIT}`;
          return this.prepared<KeyTuple>(sql, true).all({ ...params, limit: q.limit }).map(frozenKey);
        },
        q.includeInactive ? never : firstExpiry,
      ),
    ).slice();
  }

  async countActiveKeys(customerId: string, now: number, atMost: number): Promise<number> {
    return guard(() => this.stmts.countActive.get({ customer_id: customerId, now, limit: atMost })!.n);
  }

  async updateKey(customerId: string, id: string, patch: KeyPatch, event: (k: KeyRecord) => AuditEvent) {
    return this.tx(() => {
      const row = this.stmts.byId.get(customerId, id);
      if (!row) return null;
      const current = rowToKey(row);
      const updated: KeyRecord = {
        ...current,
        name: patch.name ?? current.name,
        metadata: patch.metadata ?? current.metadata,
        expiresAt: patch.expiresAt === undefined ? current.expiresAt : patch.expiresAt,
        enabled: patch.enabled ?? current.enabled,
        updatedAt: patch.updatedAt,
      };
      this.stmts.update.run({ id, name: updated.name, metadata: JSON.stringify(updated.metadata),
        expires_at: updated.expiresAt, enabled: updated.enabled ? 1 : 0, updated_at: updated.updatedAt });
      this.stmts.insertEvent.run(eventToRow(event(updated)));
      return updated;
    });
  }

  async revokeKey(customerId: string, id: string, at: number, event: (k: KeyRecord) => AuditEvent) {
    return this.tx(() => {
      const changed = this.stmts.revoke.run({ customer_id: customerId, id, at }).changes === 1;
      const row = this.stmts.byId.get(customerId, id);
      if (!row) return null;
      const key = rowToKey(row);
      if (changed) this.stmts.insertEvent.run(eventToRow(event(key)));
      return { key, changed };
    });
  }

  async changedKeyDigests(sinceMs: number): Promise<string[]> {
    return guard(() => this.stmts.changed.all(sinceMs)).map((r) => r.digest);
  }

  async recordUsage(deltas: UsageDelta[]): Promise<void> {
    this.tx(() => {
      for (const d of deltas) this.stmts.usage.run({ id: d.keyId, count: d.count, last_used_at: d.lastUsedAt });
    });
  }

  async appendAuditEvents(events: AuditEvent[]): Promise<void> {
    this.tx(() => {
      for (const e of events) this.stmts.insertEvent.run(eventToRow(e));
    });
  }

  async listAuditEvents(q: AuditQuery): Promise<AuditEvent[]> {
    const where: string[] = [];
    if (q.customerId !== null) where.push("customer_id = @customerId");
    if (q.instanceId !== null) where.push("instance_id = @instanceId");
    if (q.action !== null) where.push("action = @action");
    if (q.targetId !== null) where.push("target_key_id = @targetId");
    if (q.since !== null) where.push("time >= @since");
    if (q.until !== null) where.push("time < @until");
    if (q.beforeId !== null) where.push("id < @beforeId");
    const filter = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const sql = `SELECT * FROM audit_events ${filter} ORDER BY id DESC LIMIT ${BOUND_LIMIT}`;
    return guard(() => this.prepared<AuditRow>(sql).all(q)).map(rowToEvent);
  }

  async purgeFailureEvents(beforeMs: number, limit: number): Promise<number> {
    return this.tx(() => this.stmts.purgeFailures.run({ before: beforeMs, limit }).changes);
  }

  async updateBucket<T>(
    customerId: string,
    defaults: RateLimitPolicy,
    decide: (state: BucketState | null, policy: RateLimitPolicy) => { next: BucketState; decision: T },
  ): Promise<T> {
    return this.tx(() => {
      const row = this.stmts.bucket.get(customerId);
      const policy = row?.capacity != null && row.refill_per_second != null
        ? { capacity: row.capacity, refillPerSecond: row.refill_per_second }
        : defaults;
      const state = row?.tokens != null && row.at != null ? { tokens: row.tokens, at: row.at } : null;
      const { next, decision } = decide(state, policy);
      this.stmts.saveBucket.run({ customer_id: customerId, tokens: next.tokens, at: next.at });
      return decision;
    });
  }

  async setRateLimitPolicy(customerId: string, policy: RateLimitPolicy): Promise<void> {
    guard(() => this.stmts.savePolicy.run({ customer_id: customerId, capacity: policy.capacity, refill: policy.refillPerSecond }));
  }

  /** A one-row write, so readiness fails when writes would (disk full, read-only, lock held). */
  async ping(): Promise<void> {
    guard(() => this.stmts.ping.run(Date.now()));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  async insertSession(session: SessionRecord, maxPerSubject: number): Promise<void> {
    this.dashboard.insertSession(session, maxPerSubject);
  }
  async findSession(digest: string): Promise<SessionRecord | null> {
    return this.dashboard.findSession(digest);
  }
  async touchSession(digest: string, at: number): Promise<void> {
    this.dashboard.touchSession(digest, at);
  }
  async deleteSession(digest: string): Promise<void> {
    this.dashboard.deleteSession(digest);
  }
  async deleteSessionsOfKey(keyId: string): Promise<number> {
    return this.dashboard.deleteSessionsOfKey(keyId);
  }
  async takeGrant(digest: string): Promise<SessionRecord | null> {
    return this.dashboard.takeGrant(digest);
  }
  async deleteExpiredSessions(now: number): Promise<void> {
    this.dashboard.deleteExpiredSessions(now);
  }
  async recordHourlyUsage(deltas: HourlyUsageDelta[]): Promise<void> {
    this.dashboard.recordHourlyUsage(deltas);
  }
  async hourlyUsage(query: HourlyUsageQuery): Promise<HourlyUsageRow[]> {
    return this.dashboard.hourlyUsage(query);
  }
  async deleteHourlyUsageBefore(hour: number): Promise<void> {
    this.dashboard.deleteHourlyUsageBefore(hour);
  }

  /** Statements for the few filter combinations of the list queries, prepared once each. */
  private readonly statements = new Map<string, Database.Statement>();

  private prepared<Row>(sql: string, raw = false): Database.Statement<[object], Row> {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      if (raw) stmt.raw(true);
      this.statements.set(sql, stmt);
    }
    return stmt as Database.Statement<[object], Row>;
  }

  /** One IMMEDIATE transaction: all of `fn` or none of it. */
  private tx<T>(fn: () => T): T {
    return guard(() => this.db.transaction(fn).immediate());
  }
}

interface IdemRow {
  id: string; scope: string; customer_id: string; params_digest: string; owner: string; state: string;
  response: Buffer | null; key_ids: string; created_at: number; lease_until: number; expires_at: number;
}

const rowToIdem = (r: IdemRow): IdempotencyRecord => ({
  id: r.id,
  scope: r.scope,
  customerId: r.customer_id,
  paramsDigest: r.params_digest,
  owner: r.owner,
  state: r.state as IdempotencyRecord["state"],
  response: r.response ? new Uint8Array(r.response) : null,
  keyIds: JSON.parse(r.key_ids) as string[],
  createdAt: r.created_at,
  leaseUntil: r.lease_until,
  expiresAt: r.expires_at,
});

/**
 * A listed record's heap and, at most, the JSON that key-page-json.ts keeps for it. keyRecordBytes
 * counts at least one byte for every character of the record's strings, plus a fixed part larger
 * than the JSON's field names, times and numbers; in the JSON a character takes at most 6 bytes
 * (`\u0001`). So the JSON takes at most 6 times keyRecordBytes, whatever a customer puts in a
 * name or metadata; a plain key's JSON takes under half of it (test/unit/key-page-json.test.ts).
 */
export const listedKeyBytes = (k: KeyRecord) => 7 * keyRecordBytes(k);

/** When an active-only list's records stop being its answer with no write: the first of them to expire. */
function firstExpiry(keys: KeyRecord[]): number {
  let first = Infinity;
  for (const k of keys) if (k.expiresAt !== null && k.expiresAt < first) first = k.expiresAt;
  return first;
}
const never = () => Infinity;

/**
 * A list's identity in the list cache: every field of the query but the time, each string with
 * its length in front (so no two queries share a key, whatever their ids hold), the metadata
 * filter as JSON and only when it has entries. A plain list (no instance, page token, inactive
 * keys or metadata filter: what a customer's `GET /v1/api-keys` is) takes its key from
 * `plainListKeys`, made once per customer and page size: a key made per list, and the hashing of
 * a new string in the cache's lookup, cost ~1 µs a list under load (0.18 µs in a loop).
 */
function listQueryKey(q: KeyListQuery): string {
  let filter = "";
  for (const _ in q.metadata) {
    filter = JSON.stringify(q.metadata);
    break;
  }
  if (filter !== "" || q.instanceId !== null || q.beforeId !== null || q.includeInactive) return queryKey(q, filter);
  const known = plainListKeys.get(q.customerId);
  if (known !== undefined && known.limit === q.limit) return known.key;
  const key = queryKey(q, "");
  if (plainListKeys.size >= LIST_CACHE_ENTRIES) plainListKeys.clear();
  plainListKeys.set(q.customerId, { limit: q.limit, key });
  return key;
}

const queryKey = (q: KeyListQuery, filter: string) =>
  `${q.limit} ${q.includeInactive ? 1 : 0} ${part(q.customerId)}${part(q.instanceId)}${part(q.beforeId)}${filter}`;

/** Plain lists' cache keys by customer (listQueryKey), at most as many as the cache keeps answers. */
const plainListKeys = new Map<string, { limit: number; key: string }>();
const part = (s: string | null) => (s === null ? "-" : `${s.length}:${s}`);

/**
 * The WHERE clause of a key listing. Metadata filters are one `EXISTS (json_each …)` per entry,
 * over the customer's rows only (the (customer_id, id) index narrows first).
 */
function keyFilter(q: KeyListQuery): { where: string; params: Record<string, unknown> } {
  const where = ["customer_id = @customerId"];
  const params: Record<string, unknown> = { customerId: q.customerId, now: q.now };
  if (q.instanceId !== null) (where.push("instance_id = @instanceId"), (params.instanceId = q.instanceId));
  if (!q.includeInactive) where.push("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)");
  if (q.beforeId !== null) (where.push("id < @beforeId"), (params.beforeId = q.beforeId));
  Object.entries(q.metadata ?? {}).forEach(([k, v], i) => {
    where.push(`EXISTS (SELECT 1 FROM json_each(api_keys.metadata) WHERE key = @mk${i} AND value = @mv${i})`);
    params[`mk${i}`] = k;
    params[`mv${i}`] = v;
  });
  return { where: where.join(" AND "), params };
}

/** Adds the columns of ADDED_COLUMNS a file created by an older version lacks. */
function addMissingColumns(db: Database.Database): void {
  for (const [table, columns] of Object.entries(ADDED_COLUMNS)) {
    const have = new Set((db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name));
    for (const [column, definition] of columns) {
      if (!have.has(column)) {
        try {
          db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
        } catch (e) {
          // Another process of the same start-up added it first.
          if (!/duplicate column/.test(String(e))) throw e;
        }
      }
    }
  }
}

/** SQLite failures that mean "the store cannot serve now" (read-only, disk full, I/O, locked). */
const UNAVAILABLE = /^SQLITE_(READONLY|FULL|IOERR|BUSY|LOCKED|CANTOPEN|PERM|NOTADB|CORRUPT)/;

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE.test(code)) throw new StorageUnavailableError(undefined, e);
    if (e instanceof TypeError && /database connection is not open/.test(e.message)) {
      throw new StorageUnavailableError("storage is closed", e);
    }
    throw e;
  }
}
