import type Database from "better-sqlite3";
import type { HourlyUsageDelta, HourlyUsageQuery, HourlyUsageRow, SessionRecord } from "../../domain/session-store.js";

/** The dashboard's tables in the embedded store (sessions, portal grants, hourly usage). */
export const DASHBOARD_SCHEMA = `
CREATE TABLE IF NOT EXISTS dashboard_sessions (
  digest       TEXT PRIMARY KEY,
  kind         TEXT NOT NULL,
  subject      TEXT NOT NULL,
  customer_id  TEXT NOT NULL,
  key_id       TEXT,
  key_digest   TEXT,
  scopes       TEXT NOT NULL,
  instance_id  TEXT,
  return_url   TEXT,
  created_by   TEXT,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dashboard_sessions_subject ON dashboard_sessions (kind, subject, created_at);
CREATE INDEX IF NOT EXISTS dashboard_sessions_key ON dashboard_sessions (key_id);
CREATE INDEX IF NOT EXISTS dashboard_sessions_expiry ON dashboard_sessions (expires_at);

CREATE TABLE IF NOT EXISTS usage_hourly (
  customer_id  TEXT NOT NULL,
  key_id       TEXT NOT NULL,
  instance_id  TEXT,
  hour         INTEGER NOT NULL,
  outcome      TEXT NOT NULL,
  count        INTEGER NOT NULL,
  PRIMARY KEY (customer_id, hour, key_id, outcome)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_hourly_hour ON usage_hourly (hour);
`;

interface SessionRow {
  digest: string;
  kind: string;
  subject: string;
  customer_id: string;
  key_id: string | null;
  key_digest: string | null;
  scopes: string;
  instance_id: string | null;
  return_url: string | null;
  created_by: string | null;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

const toRow = (s: SessionRecord): SessionRow => ({
  digest: s.digest,
  kind: s.kind,
  subject: s.subject,
  customer_id: s.customerId,
  key_id: s.keyId,
  key_digest: s.keyDigest,
  scopes: JSON.stringify(s.scopes),
  instance_id: s.instanceId,
  return_url: s.returnUrl,
  created_by: s.createdBy,
  created_at: s.createdAt,
  last_seen_at: s.lastSeenAt,
  expires_at: s.expiresAt,
});

const fromRow = (r: SessionRow): SessionRecord => ({
  digest: r.digest,
  kind: r.kind === "grant" ? "grant" : "session",
  subject: r.subject,
  customerId: r.customer_id,
  keyId: r.key_id,
  keyDigest: r.key_digest,
  scopes: JSON.parse(r.scopes) as string[],
  instanceId: r.instance_id,
  returnUrl: r.return_url,
  createdBy: r.created_by,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  expiresAt: r.expires_at,
});

/**
 * The statements behind SqliteStore's SessionStore and HourlyUsageStore methods. `tx` is the
 * store's guarded IMMEDIATE transaction, so these fail and roll back like every other write.
 */
export class SqliteDashboard {
  private readonly s;

  constructor(db: Database.Database, private readonly tx: <T>(fn: () => T) => T) {
    db.exec(DASHBOARD_SCHEMA);
    this.s = {
      insert: db.prepare(`INSERT INTO dashboard_sessions VALUES (@digest, @kind, @subject, @customer_id, @key_id,
        @key_digest, @scopes, @instance_id, @return_url, @created_by, @created_at, @last_seen_at, @expires_at)`),
      trim: db.prepare(`DELETE FROM dashboard_sessions WHERE digest IN (SELECT digest FROM dashboard_sessions
        WHERE kind = @kind AND subject = @subject ORDER BY created_at DESC, digest DESC LIMIT -1 OFFSET CAST(@keep AS INTEGER))`),
      find: db.prepare<[string], SessionRow>(`SELECT * FROM dashboard_sessions WHERE digest = ? AND kind = 'session'`),
      touch: db.prepare(`UPDATE dashboard_sessions SET last_seen_at = max(last_seen_at, @at) WHERE digest = @digest`),
      delete: db.prepare(`DELETE FROM dashboard_sessions WHERE digest = ?`),
      deleteOfKey: db.prepare(`DELETE FROM dashboard_sessions WHERE key_id = ?`),
      take: db.prepare<[string], SessionRow>(`DELETE FROM dashboard_sessions WHERE digest = ? AND kind = 'grant' RETURNING *`),
      expire: db.prepare(`DELETE FROM dashboard_sessions WHERE expires_at < ?`),
      usage: db.prepare(`INSERT INTO usage_hourly VALUES (@customer_id, @key_id, @instance_id, @hour, @outcome, @count)
        ON CONFLICT (customer_id, hour, key_id, outcome) DO UPDATE SET count = count + excluded.count`),
      purge: db.prepare(`DELETE FROM usage_hourly WHERE hour < ?`),
    };
    this.db = db;
  }

  private readonly db: Database.Database;

  insertSession(session: SessionRecord, maxPerSubject: number): void {
    this.tx(() => {
      this.s.insert.run(toRow(session));
      this.s.trim.run({ kind: session.kind, subject: session.subject, keep: maxPerSubject });
    });
  }

  findSession(digest: string): SessionRecord | null {
    const row = this.tx(() => this.s.find.get(digest));
    return row ? fromRow(row) : null;
  }

  touchSession(digest: string, at: number): void {
    this.tx(() => this.s.touch.run({ digest, at }));
  }

  deleteSession(digest: string): void {
    this.tx(() => this.s.delete.run(digest));
  }

  deleteSessionsOfKey(keyId: string): number {
    return this.tx(() => this.s.deleteOfKey.run(keyId).changes);
  }

  takeGrant(digest: string): SessionRecord | null {
    const row = this.tx(() => this.s.take.get(digest));
    return row ? fromRow(row) : null;
  }

  deleteExpiredSessions(now: number): void {
    this.tx(() => this.s.expire.run(now));
  }

  recordHourlyUsage(deltas: HourlyUsageDelta[]): void {
    this.tx(() => {
      for (const d of deltas) {
        this.s.usage.run({ customer_id: d.customerId, key_id: d.keyId, instance_id: d.instanceId, hour: d.hour, outcome: d.outcome, count: d.count });
      }
    });
  }

  hourlyUsage(q: HourlyUsageQuery): HourlyUsageRow[] {
    const where = ["customer_id = @customerId", "hour >= @since", "hour < @until"];
    if (q.keyId !== null) where.push("key_id = @keyId");
    if (q.instanceId !== null) where.push("instance_id = @instanceId");
    const sql = `SELECT hour, outcome, sum(count) AS count FROM usage_hourly WHERE ${where.join(" AND ")}
      GROUP BY hour, outcome ORDER BY hour, outcome`;
    return this.tx(() => this.db.prepare<[object], HourlyUsageRow>(sql).all(q));
  }

  deleteHourlyUsageBefore(hour: number): void {
    this.tx(() => this.s.purge.run(hour));
  }
}
