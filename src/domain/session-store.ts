/**
 * What the dashboard keeps in the Store (SPEC §10, issue "The dashboard"): sessions and one-time
 * portal grants, and hourly authentication counts. Part of the Store port, so every process and
 * replica sees the same sessions and the same numbers; implemented by both stores and covered by
 * test/storage/store-contract.ts.
 */

/**
 * A dashboard session, or a one-time portal grant that becomes one. Only `digest` (SHA-256 of the
 * token) is stored: a copy of the store signs nobody in.
 */
export interface SessionRecord {
  digest: string;
  kind: "session" | "grant";
  /** What the per-subject bound counts: `key:<key id>` or `portal:<customer id>`. */
  subject: string;
  customerId: string;
  /** Key sessions: the key that signed in (the session acts as that key, while it is active). */
  keyId: string | null;
  /** The key's own SHA-256 digest (as in api_keys), to look the key up through the key cache. */
  keyDigest: string | null;
  /** Portal sessions: the scopes and binding the platform granted. */
  scopes: string[];
  instanceId: string | null;
  returnUrl: string | null;
  /** The internal caller that created a portal grant. */
  createdBy: string | null;
  createdAt: number;
  lastSeenAt: number;
  /** Absolute end of the session (or of the grant's validity). */
  expiresAt: number;
}

export interface SessionStore {
  /**
   * Stores the record, then deletes the oldest records of the same kind and subject beyond
   * `maxPerSubject` (so sign-ins cannot grow storage without bound).
   */
  insertSession(session: SessionRecord, maxPerSubject: number): Promise<void>;
  /** The session (kind `session`) with this digest, or null. */
  findSession(digest: string): Promise<SessionRecord | null>;
  /** Moves `lastSeenAt` forward (idle timeout). */
  touchSession(digest: string, at: number): Promise<void>;
  deleteSession(digest: string): Promise<void>;
  /** Deletes every session of this key; resolves to how many there were. */
  deleteSessionsOfKey(keyId: string): Promise<number>;
  /**
   * Deletes the grant with this digest and returns it, atomically: of any number of concurrent
   * callers on any number of processes, exactly one gets it (single use). Null if none.
   */
  takeGrant(digest: string): Promise<SessionRecord | null>;
  /** Deletes sessions and grants whose `expiresAt` is before `now`. */
  deleteExpiredSessions(now: number): Promise<void>;
}

/** Authentications of one key, in one hour, with one outcome, counted in memory. */
export interface HourlyUsageDelta {
  customerId: string;
  keyId: string;
  instanceId: string | null;
  /** Epoch ms of the start of the hour. */
  hour: number;
  /** `valid` or a denial reason (`revoked`, `expired`, …). */
  outcome: string;
  count: number;
}

export interface HourlyUsageQuery {
  customerId: string;
  /** Only this key. */
  keyId: string | null;
  /** Only keys bound to this instance. */
  instanceId: string | null;
  /** Hour starts, epoch ms: since inclusive, until exclusive. */
  since: number;
  until: number;
}

/** Counts summed over keys (and writers) per hour and outcome. */
export interface HourlyUsageRow {
  hour: number;
  outcome: string;
  count: number;
}

export interface HourlyUsageStore {
  /** Adds the counts (`$inc`); never one write per authentication: the domain batches them. */
  recordHourlyUsage(deltas: HourlyUsageDelta[]): Promise<void>;
  /** Sums per hour and outcome, in hour order. */
  hourlyUsage(query: HourlyUsageQuery): Promise<HourlyUsageRow[]>;
  /** Retention: deletes the counts of hours before `hour`. */
  deleteHourlyUsageBefore(hour: number): Promise<void>;
}
