/**
 * The embedded store's schema. Times are epoch milliseconds; scopes, metadata, actor and target
 * are JSON text. `digest` is the SHA-256 of the key (the secret itself is never stored).
 */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (
  id             TEXT PRIMARY KEY,
  customer_id    TEXT NOT NULL,
  instance_id    TEXT,
  name           TEXT NOT NULL,
  prefix         TEXT NOT NULL,
  environment    TEXT NOT NULL,
  scopes         TEXT NOT NULL,
  metadata       TEXT NOT NULL,
  digest         TEXT NOT NULL UNIQUE,
  last_used_at   INTEGER,
  total_requests INTEGER NOT NULL DEFAULT 0,
  expires_at     INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  revoked_at     INTEGER,
  enabled        INTEGER NOT NULL DEFAULT 1,
  rolled_from    TEXT,
  rolled_to      TEXT,
  predecessor_grace_ms INTEGER,
  last_four      TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS api_keys_customer ON api_keys (customer_id, id);
CREATE INDEX IF NOT EXISTS api_keys_updated ON api_keys (updated_at);
CREATE INDEX IF NOT EXISTS api_keys_customer_active ON api_keys (customer_id, revoked_at, expires_at);

CREATE TABLE IF NOT EXISTS audit_events (
  id             TEXT PRIMARY KEY,
  customer_id    TEXT,
  action         TEXT NOT NULL,
  actor          TEXT NOT NULL,
  target_key_id  TEXT,
  target         TEXT,
  outcome        TEXT NOT NULL,
  reason         TEXT,
  ip             TEXT,
  user_agent     TEXT,
  request_id     TEXT,
  time           INTEGER NOT NULL,
  count          INTEGER NOT NULL DEFAULT 1,
  related_key_id TEXT,
  instance_id    TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_customer ON audit_events (customer_id, id);
CREATE INDEX IF NOT EXISTS audit_customer_action ON audit_events (customer_id, action, id);
CREATE INDEX IF NOT EXISTS audit_target ON audit_events (target_key_id, id);
CREATE INDEX IF NOT EXISTS audit_outcome_time ON audit_events (outcome, time);

CREATE TABLE IF NOT EXISTS idempotency (
  id             TEXT PRIMARY KEY,
  scope          TEXT NOT NULL,
  customer_id    TEXT NOT NULL,
  params_digest  TEXT NOT NULL,
  owner          TEXT NOT NULL,
  state          TEXT NOT NULL,
  response       BLOB,
  key_ids        TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  lease_until    INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_at);

CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS rate_limits (
  customer_id        TEXT PRIMARY KEY,
  tokens             REAL,
  at                 INTEGER,
  capacity           INTEGER,
  refill_per_second  REAL
) WITHOUT ROWID;
`;

/**
 * Columns added after the first release (issue 13), added to files created before it. SQLite's
 * ADD COLUMN puts them last, where the CREATE above has them too.
 */
export const ADDED_COLUMNS: Record<string, [column: string, definition: string][]> = {
  api_keys: [
    ["enabled", "INTEGER NOT NULL DEFAULT 1"],
    ["rolled_from", "TEXT"],
    ["rolled_to", "TEXT"],
    ["predecessor_grace_ms", "INTEGER"],
    ["last_four", "TEXT NOT NULL DEFAULT ''"],
  ],
  audit_events: [
    ["related_key_id", "TEXT"],
    // Issue 12: the instance of the key an event is about (instance-bound readers); NULL before.
    ["instance_id", "TEXT"],
  ],
};

/** Indexes on ADDED_COLUMNS, created once the columns exist. */
export const ADDED_INDEXES = [
  "CREATE INDEX IF NOT EXISTS audit_customer_instance ON audit_events (customer_id, instance_id, id)",
];
