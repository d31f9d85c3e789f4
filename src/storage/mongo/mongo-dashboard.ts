import type { Collection, Db, IndexDescription } from "mongodb";
import type { HourlyUsageDelta, HourlyUsageQuery, HourlyUsageRow, SessionRecord } from "../../domain/session-store.js";

/** A dashboard session or portal grant; `_id` is the token's digest. */
export interface SessionDoc {
  _id: string;
  kind: string;
  subject: string;
  customer_id: string;
  key_id: string | null;
  key_digest: string | null;
  scopes: string[];
  instance_id: string | null;
  return_url: string | null;
  created_by: string | null;
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
}

/**
 * Hourly counts of one key and outcome, written by one process (`_id` ends with the writer), so no
 * two processes `$inc` one document (FerretDB 1.24 may lose concurrent updates to one document).
 */
export interface UsageHourlyDoc {
  _id: string;
  customer_id: string;
  key_id: string;
  instance_id: string | null;
  hour: Date;
  outcome: string;
  count: number;
}

export const DASHBOARD_INDEXES: Record<string, IndexDescription[]> = {
  dashboard_sessions: [
    { key: { kind: 1, subject: 1, created_at: -1 }, name: "subject_newest" },
    { key: { key_id: 1 }, name: "key" },
    { key: { expires_at: 1 }, name: "expiry" },
  ],
  usage_hourly: [
    { key: { customer_id: 1, hour: 1 }, name: "customer_hour" },
    { key: { hour: 1 }, name: "hour" },
  ],
};

const toDoc = (s: SessionRecord): SessionDoc => ({
  _id: s.digest,
  kind: s.kind,
  subject: s.subject,
  customer_id: s.customerId,
  key_id: s.keyId,
  key_digest: s.keyDigest,
  scopes: s.scopes,
  instance_id: s.instanceId,
  return_url: s.returnUrl,
  created_by: s.createdBy,
  created_at: new Date(s.createdAt),
  last_seen_at: new Date(s.lastSeenAt),
  expires_at: new Date(s.expiresAt),
});

const fromDoc = (d: SessionDoc): SessionRecord => ({
  digest: d._id,
  kind: d.kind === "grant" ? "grant" : "session",
  subject: d.subject,
  customerId: d.customer_id,
  keyId: d.key_id,
  keyDigest: d.key_digest,
  scopes: d.scopes,
  instanceId: d.instance_id,
  returnUrl: d.return_url,
  createdBy: d.created_by,
  createdAt: d.created_at.getTime(),
  lastSeenAt: d.last_seen_at.getTime(),
  expiresAt: d.expires_at.getTime(),
});

/** MongoStore's SessionStore and HourlyUsageStore, with single-document operations only. */
export class MongoDashboard {
  private readonly sessions: Collection<SessionDoc>;
  private readonly usage: Collection<UsageHourlyDoc>;

  constructor(db: Db, private readonly writer: string) {
    this.sessions = db.collection("dashboard_sessions");
    this.usage = db.collection("usage_hourly");
  }

  async insertSession(session: SessionRecord, maxPerSubject: number): Promise<void> {
    await this.sessions.insertOne(toDoc(session));
    const extra = await this.sessions
      .find({ kind: session.kind, subject: session.subject }, { projection: { _id: 1 } })
      .sort({ created_at: -1, _id: -1 })
      .skip(maxPerSubject)
      .toArray();
    if (extra.length) await this.sessions.deleteMany({ _id: { $in: extra.map((d) => d._id) } });
  }

  async findSession(digest: string): Promise<SessionRecord | null> {
    const doc = await this.sessions.findOne({ _id: digest, kind: "session" });
    return doc ? fromDoc(doc) : null;
  }

  async touchSession(digest: string, at: number): Promise<void> {
    await this.sessions.updateOne({ _id: digest, last_seen_at: { $lt: new Date(at) } }, { $set: { last_seen_at: new Date(at) } });
  }

  async deleteSession(digest: string): Promise<void> {
    await this.sessions.deleteOne({ _id: digest });
  }

  async deleteSessionsOfKey(keyId: string): Promise<number> {
    return (await this.sessions.deleteMany({ key_id: keyId })).deletedCount;
  }

  /** Read, then delete: only the caller whose delete removed the document gets the grant. */
  async takeGrant(digest: string): Promise<SessionRecord | null> {
    const doc = await this.sessions.findOne({ _id: digest, kind: "grant" });
    if (!doc) return null;
    const { deletedCount } = await this.sessions.deleteOne({ _id: digest, kind: "grant" });
    return deletedCount === 1 ? fromDoc(doc) : null;
  }

  async deleteExpiredSessions(now: number): Promise<void> {
    await this.sessions.deleteMany({ expires_at: { $lt: new Date(now) } });
  }

  async recordHourlyUsage(deltas: HourlyUsageDelta[]): Promise<void> {
    if (deltas.length === 0) return;
    await this.usage.bulkWrite(
      deltas.map((d) => ({
        updateOne: {
          filter: { _id: `${d.customerId}|${d.hour}|${d.keyId}|${d.outcome}|${this.writer}` },
          update: {
            $inc: { count: d.count },
            $set: { customer_id: d.customerId, key_id: d.keyId, instance_id: d.instanceId, hour: new Date(d.hour), outcome: d.outcome },
          },
          upsert: true,
        },
      })),
      { ordered: false },
    );
  }

  async hourlyUsage(q: HourlyUsageQuery): Promise<HourlyUsageRow[]> {
    const filter: Record<string, unknown> = { customer_id: q.customerId, hour: { $gte: new Date(q.since), $lt: new Date(q.until) } };
    if (q.keyId !== null) filter.key_id = q.keyId;
    if (q.instanceId !== null) filter.instance_id = q.instanceId;
    const sums = new Map<string, HourlyUsageRow>();
    const docs = await this.usage.find(filter, { projection: { hour: 1, outcome: 1, count: 1 } }).toArray();
    for (const d of docs) {
      const hour = d.hour.getTime();
      const k = `${hour}|${d.outcome}`;
      const row = sums.get(k);
      if (row) row.count += d.count;
      else sums.set(k, { hour, outcome: d.outcome, count: d.count });
    }
    return [...sums.values()].sort((a, b) => a.hour - b.hour || (a.outcome < b.outcome ? -1 : a.outcome > b.outcome ? 1 : 0));
  }

  async deleteHourlyUsageBefore(hour: number): Promise<void> {
    await this.usage.deleteMany({ hour: { $lt: new Date(hour) } });
  }
}
