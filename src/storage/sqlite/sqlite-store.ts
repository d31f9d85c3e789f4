import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { StorageUnavailableError } from "../../domain/errors.js";
import type { BucketState } from "../../domain/rate-limit/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitPolicy } from "../../domain/types.js";
import type { AuditQuery, KeyListQuery, KeyPatch, Store, UsageDelta } from "../../domain/store.js";
import { type AuditRow, eventToRow, KEY_COLUMNS, type KeyTuple, keyToRow, rowToEvent, rowToKey } from "./rows.js";
import { ADDED_COLUMNS, SCHEMA } from "./schema.js";

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

/**
 * Adds the columns of ADDED_COLUMNS a file made by an older version lacks, then their indexes.
 * Two processes opening the same old file may both try: the second ALTER finds the column there.
 */
function addColumns(db: Database.Database): void {
  for (const c of ADDED_COLUMNS) {
    const have = (db.pragma(`table_info(${c.table})`) as { name: string }[]).some((col) => col.name === c.column);
    if (!have) {
      try {
        db.exec(`ALTER TABLE ${c.table} ADD COLUMN ${c.column} ${c.type}`);
      } catch (e) {
        if (!/duplicate column name/i.test((e as Error).message)) throw e;
      }
    }
    if (c.index) db.exec(c.index);
  }
}

/** The constructor is synchronous (so is better-sqlite3), hence a blocking wait. */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(dataDir: string) {
    const db = guard(() => {
      mkdirSync(dataDir, { recursive: true });
      const d = new Database(join(dataDir, "zpk.sqlite"));
      d.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`); // better-sqlite3 waits synchronously: keep it short
      enableWal(d);
      d.pragma("synchronous = NORMAL");
      d.exec(SCHEMA);
      addColumns(d);
      return d;
    });
    this.db = db;
    this.stmts = {
      insertKey: db.prepare(`INSERT INTO api_keys VALUES (@id, @customer_id, @instance_id, @name,
        @prefix, @environment, @scopes, @metadata, @digest, @last_used_at, @total_requests,
        @expires_at, @created_at, @updated_at, @revoked_at)`),
      insertEvent: db.prepare(`INSERT INTO audit_events (id, customer_id, action, actor, target_key_id, target,
        outcome, reason, ip, user_agent, request_id, time, count, instance_id) VALUES (@id, @customer_id, @action,
        @actor, @target_key_id, @target, @outcome, @reason, @ip, @user_agent, @request_id, @time, @count, @instance_id)`),
      byDigest: db.prepare<[string], KeyTuple>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE digest = ?`).raw(true),
      byId: db.prepare<[string, string], KeyTuple>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE customer_id = ? AND id = ?`).raw(true),
      update: db.prepare(`UPDATE api_keys SET name = @name, metadata = @metadata,
        expires_at = @expires_at, updated_at = @updated_at WHERE id = @id`),
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

  async findKeyByDigest(digest: string): Promise<KeyRecord | null> {
    const row = guard(() => this.stmts.byDigest.get(digest));
    return row ? rowToKey(row) : null;
  }

  async findKey(customerId: string, id: string): Promise<KeyRecord | null> {
    const row = guard(() => this.stmts.byId.get(customerId, id));
    return row ? rowToKey(row) : null;
  }

  async listKeys(q: KeyListQuery): Promise<KeyRecord[]> {
    const where = ["customer_id = @customerId"];
    if (q.instanceId !== null) where.push("instance_id = @instanceId");
    if (!q.includeInactive) where.push("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)");
    if (q.beforeId !== null) where.push("id < @beforeId");
    const sql = `SELECT ${KEY_COLUMNS} FROM api_keys WHERE ${where.join(" AND ")} ORDER BY id DESC LIMIT ${BOUND_LIMIT}`;
    return guard(() => this.prepared<KeyTuple>(sql, true).all(q)).map(rowToKey);
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
        updatedAt: patch.updatedAt,
      };
      this.stmts.update.run({ id, name: updated.name, metadata: JSON.stringify(updated.metadata),
        expires_at: updated.expiresAt, updated_at: updated.updatedAt });
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

  /** Statements for the few filter combinations of the list queries, prepared once each. */
  private readonly statements = new Map<string, Database.Statement>();

  private prepared<Row>(sql: string, raw = false): Database.Statement<[object], Row> {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql).raw(raw);
      this.statements.set(sql, stmt);
    }
    return stmt as Database.Statement<[object], Row>;
  }

  /** One IMMEDIATE transaction: all of `fn` or none of it. */
  private tx<T>(fn: () => T): T {
    return guard(() => this.db.transaction(fn).immediate());
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
