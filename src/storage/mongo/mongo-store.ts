import { randomBytes, randomUUID } from "node:crypto";
import { Binary, BSON, type Collection, type Db, MongoClient, type MongoClientOptions, MongoError, type Filter } from "mongodb";
import { alreadyExists, StorageUnavailableError } from "../../domain/errors.js";
import type { BucketState } from "../../domain/rate-limit/token-bucket.js";
import { LIMITS } from "../../domain/validation.js";
import type { AuditEvent, KeyRecord, RateLimitPolicy } from "../../domain/types.js";
import type { AuditQuery, IdempotencyPatch, IdempotencyRecord, KeyListQuery, KeyPatch, Store, UsageDelta } from "../../domain/store.js";
import {
  type AuditDoc, type BucketDoc, type IdempotencyDoc, type PendingWriteDoc, type PolicyDoc, type UsageDoc, docToEvent,
  docToKey, eventToDoc, type KeyDoc, keyToDoc, metadataPairs,
} from "./documents.js";
import { PendingWrites } from "./pending-writes.js";
import { ensureIndexes } from "./indexes.js";
import { KeyedQueue } from "./keyed-queue.js";
import { MongoDashboard } from "./mongo-dashboard.js";
import { WRITER_LEASE_MS, WriterSlot } from "./writer-slot.js";
import type { HourlyUsageDelta, HourlyUsageQuery, HourlyUsageRow, SessionRecord } from "../../domain/session-store.js";

/** Bucket versions are kept this long (far above any request's duration) before being deleted. */
const BUCKET_VERSION_TTL_MS = 60_000;

/** How many times a bucket compare-and-set is retried under contention before giving up (503). */
const CAS_ATTEMPTS = 64;

/**
 * The MongoDB store, for several stateless replicas on one replica set or sharded cluster (shard
 * key `customer_id`). It relies only on single-document atomicity — no transactions, change
 * streams, pipeline updates or server-side JS — so it runs on MongoDB, FerretDB and other
 * wire-compatible servers. Why each multi-document write path (issue, update, revoke, buckets,
 * usage) is safe with that, and what FerretDB does differently: docs/mongodb.md.
 *
 * Batch issue, import and roll (several keys, all or nothing) go through pending-writes.ts: keys
 * inserted invisible, then one single-document commit point; `PendingWrites.settle` rolls a crashed
 * write forward or back.
 */
export class MongoStore implements Store {
  private constructor(
    private readonly client: MongoClient,
    private readonly keys: Collection<KeyDoc>,
    private readonly events: Collection<AuditDoc>,
    private readonly buckets: Collection<BucketDoc>,
    private readonly policies: Collection<PolicyDoc>,
    private readonly usage: Collection<UsageDoc>,
    private readonly idempotency: Collection<IdempotencyDoc>,
    pendingWrites: Collection<PendingWriteDoc>,
    private readonly db: Db,
    writerLeaseMs: number,
  ) {
    this.pending = new PendingWrites(pendingWrites, keys, events);
    this.dashboard = new MongoDashboard(db, this.writer);
    this.usageWriter = new WriterSlot(db.collection("usage_writers"), writerLeaseMs);
  }

  /** The name of this process's `api_key_usage` documents (`<key id>:<name>`), see WriterSlot. */
  private readonly usageWriter: WriterSlot;

  /** Sessions, portal grants and hourly usage (mongo-dashboard.ts). */
  private readonly dashboard: MongoDashboard;

  private readonly pending: PendingWrites;
  private recoveryTimer: NodeJS.Timeout | null = null;

  /** This process's hourly usage documents end with it: no two processes write the same one. */
  private readonly writer = randomBytes(8).toString("hex");

  /**
   * Key writes (update, revoke) are queued per key in this process: FerretDB 1.24 may lose one of
   * two concurrent updates of one document (a revoke racing an update came back with
   * `revoked_at` still null), and nothing above the store serialises writes to one key. Buckets
   * need no such queue: the domain already runs one store step per customer at a time in a
   * process (domain/rate-limit/bucket-steps.ts), and across processes the unique-insert
   * compare-and-set decides.
   */
  private readonly keyLocks = new KeyedQueue();

  /**
   * Connects, creates indexes and claims a usage writer slot; throws StorageUnavailableError when
   * the server is unreachable. `writerLeaseMs`: the slot's lease (WRITER_LEASE_MS; tests shorten it).
   */
  static async connect(uri: string, dbName: string, opts: { timeoutMs?: number; writerLeaseMs?: number } = {}): Promise<MongoStore> {
    const client = new MongoClient(uri, mongoClientOptions(opts.timeoutMs));
    return guard(async () => {
      await client.connect().catch((e: unknown) => {
        throw new StorageUnavailableError(`cannot reach MongoDB at ${hostsOf(uri)}: ${(e as Error).message}`, e);
      });
      const db: Db = client.db(dbName);
      await ensureIndexes(db);
      const store = new MongoStore(
        client,
        db.collection("api_keys"),
        db.collection("audit_events"),
        db.collection("rate_limits"),
        db.collection("rate_limit_policies"),
        db.collection("api_key_usage"),
        db.collection("idempotency_records"),
        db.collection("pending_writes"),
        db,
        opts.writerLeaseMs ?? WRITER_LEASE_MS,
      );
      await store.usageWriter.start();
      return store;
    }).then(async (store) => {
      await store.pending.recover().catch(() => {});
      store.recoveryTimer = setInterval(() => void store.pending.recover().catch(() => {}), 10_000).unref();
      return store;
    });
  }

  insertKeys(keys: KeyRecord[], events: AuditEvent[]): Promise<void> {
    return guard(async () => {
      const id = `pw_${randomUUID()}`;
      const doc = { _id: id, key_ids: keys.map((k) => k.id), event_ids: events.map((e) => e.id) };
      await this.pending.begin({ ...doc, kind: "batch", customer_id: keys[0]?.customerId ?? "", predecessor_id: null });
      try {
        // In chunks: one insertMany per chunk keeps each command small (FerretDB inserts row by row).
        for (let i = 0; i < keys.length; i += INSERT_CHUNK) {
          await this.keys.insertMany(keys.slice(i, i + INSERT_CHUNK).map((k) => ({ ...keyToDoc(k), pending_write: id })), { ordered: true });
        }
        if (events.length) await this.events.insertMany(events.map(eventToDoc), { ordered: true });
      } catch (e) {
        await this.pending.abort(doc).catch(() => {}); // else settle() does it later
        if (isDuplicateKey(e)) throw alreadyExists("a key with one of these digests exists already");
        throw e;
      }
      await this.pending.commitBatch(id);
      await this.pending.finish(id, doc.key_ids);
    });
  }

  rollKey(
    successor: KeyRecord,
    predecessor: { expectExpiresAt: number | null; expiresAt: number | null; updatedAt: number },
    events: AuditEvent[],
  ): Promise<boolean> {
    const oldId = successor.rolledFrom!;
    return this.keyLocks.run(oldId, () => guard(async () => {
      const id = `pw_${randomUUID()}`;
      const doc = { _id: id, key_ids: [successor.id], event_ids: events.map((e) => e.id) };
      await this.pending.begin({ ...doc, kind: "roll", customer_id: successor.customerId, predecessor_id: oldId });
      try {
        if (events.length) await this.events.insertMany(events.map(eventToDoc), { ordered: true });
        await this.keys.insertOne({ ...keyToDoc(successor), pending_write: id });
      } catch (e) {
        await this.pending.abort(doc).catch(() => {});
        throw e;
      }
      // The commit point: the predecessor names its successor, if it is still rollable.
      const committed = await this.keys.findOneAndUpdate(
        { _id: oldId, customer_id: successor.customerId, rolled_to: null, revoked_at: null,
          expires_at: predecessor.expectExpiresAt === null ? null : new Date(predecessor.expectExpiresAt) },
        { $set: { rolled_to: successor.id, expires_at: date(predecessor.expiresAt), updated_at: new Date(predecessor.updatedAt) } },
      );
      if (!committed) {
        await this.pending.abort(doc).catch(() => {});
        return false;
      }
      await this.pending.finish(id, doc.key_ids);
      return true;
    }));
  }

  startPredecessorGrace(successor: KeyRecord, at: number): Promise<boolean> {
    const { predecessorGraceMs: grace, rolledFrom } = successor;
    if (grace === null || rolledFrom === null) return Promise.resolve(false);
    // Predecessor first, then the successor's flag: a crash in between is repaired by the next
    // first use, which computes the same (or a later, hence ignored) cut-off.
    return this.keyLocks.run(rolledFrom, () => guard(async () => {
      const until = at + grace;
      for (let attempt = 0; attempt < 5; attempt++) {
        const pred = await this.keys.findOne({ _id: rolledFrom, customer_id: successor.customerId });
        if (!pred) break;
        const current = pred.expires_at?.getTime() ?? null;
        if (current !== null && current <= until) break;
        const r = await this.keys.updateOne(
          { _id: rolledFrom, expires_at: pred.expires_at },
          { $set: { expires_at: new Date(until), updated_at: new Date(at) } },
        );
        if (r.modifiedCount === 1) break;
      }
      const r = await this.keys.updateOne(
        { _id: successor.id, predecessor_grace_ms: { $ne: null } },
        { $set: { predecessor_grace_ms: null, updated_at: new Date(at) } },
      );
      return r.modifiedCount === 1;
    }));
  }

  countKeys(q: KeyListQuery): Promise<number> {
    return guard(async () => this.keys.countDocuments(keyFilter({ ...q, beforeId: null })));
  }

  claimIdempotency(r: IdempotencyRecord): Promise<IdempotencyRecord | null> {
    return guard(async () => {
      try {
        await this.idempotency.insertOne({
          _id: r.id, scope: r.scope, customer_id: r.customerId, params_digest: r.paramsDigest, owner: r.owner,
          state: r.state, response: r.response ? Buffer.from(r.response) : null, key_ids: r.keyIds,
          created_at: new Date(r.createdAt), lease_until: new Date(r.leaseUntil), expires_at: new Date(r.expiresAt),
        });
        return null;
      } catch (e) {
        if (!isDuplicateKey(e)) throw e;
      }
      const d = await this.idempotency.findOne({ _id: r.id });
      if (!d) return this.claimIdempotency(r); // deleted in between: claim again
      return {
        id: d._id, scope: d.scope, customerId: d.customer_id, paramsDigest: d.params_digest, owner: d.owner,
        state: d.state as IdempotencyRecord["state"],
        response: binaryOf(d.response),
        keyIds: d.key_ids, createdAt: d.created_at.getTime(), leaseUntil: d.lease_until.getTime(), expiresAt: d.expires_at.getTime(),
      };
    });
  }

  updateIdempotency(id: string, owner: string, patch: IdempotencyPatch): Promise<boolean> {
    const set: Partial<IdempotencyDoc> = {};
    if (patch.state !== undefined) set.state = patch.state;
    if (patch.response !== undefined) set.response = patch.response && Buffer.from(patch.response);
    if (patch.keyIds !== undefined) set.key_ids = patch.keyIds;
    return guard(async () => (await this.idempotency.updateOne({ _id: id, owner }, { $set: set })).matchedCount === 1);
  }

  deleteIdempotency(id: string, owner: string): Promise<void> {
    return guard(async () => {
      await this.idempotency.deleteOne({ _id: id, owner });
    });
  }

  purgeIdempotency(now: number): Promise<number> {
    return guard(async () => (await this.idempotency.deleteMany({ expires_at: { $lte: new Date(now) } })).deletedCount);
  }

  insertKey(key: KeyRecord, event: AuditEvent): Promise<void> {
    return guard(async () => {
      await this.events.insertOne(eventToDoc(event));
      try {
        await this.keys.insertOne(keyToDoc(key));
      } catch (e) {
        await this.events.deleteOne({ _id: event.id }).catch(() => {}); // the key was refused: so is its event
        throw e;
      }
    });
  }

  findKeyByDigest(digest: string): Promise<KeyRecord | null> {
    return guard(async () => {
      const doc = await this.keys.findOne({ digest, pending_write: null });
      return doc ? docToKey(doc) : null; // Authenticate needs no usage counters
    });
  }

  findKey(customerId: string, id: string): Promise<KeyRecord | null> {
    return guard(async () => {
      const doc = await this.keys.findOne({ _id: id, customer_id: customerId });
      if (!doc) return null;
      // A key of an unfinished multi-document write exists only once that write is committed.
      if (doc.pending_write && (await this.pending.settle(doc.pending_write)) !== "committed") return null;
      return (await this.withUsage([docToKey(doc)]))[0]!;
    });
  }

  /**
   * One `find` command, not a cursor: a page is at most `pageSizeMax + 1` key documents, which
   * one batch always holds (`singleBatch`; test/storage/mongo-store.test.ts reads a page of the
   * largest keys LIMITS allow, far inside the 16 MiB reply limit), and the driver's cursor machinery cost our process 361 against 215 µs
   * of CPU per 10-key page (`npm run bench -- mongo-driver`, docs/mongodb.md). `metadata_pairs`
   * and `pending_write` (filter-only fields) are not fetched.
   */
  listKeys(q: KeyListQuery): Promise<KeyRecord[]> {
    if (q.limit > PAGE_READ_MAX) return Promise.reject(new RangeError(`listKeys reads at most ${PAGE_READ_MAX} keys at a time (asked for ${q.limit})`));
    return guard(async () => {
      const reply = await this.db.command(listKeysCommand(this.keys.collectionName, q));
      return this.withUsage((reply.cursor.firstBatch as KeyDoc[]).map(docToKey));
    });
  }

  countActiveKeys(customerId: string, now: number, atMost: number): Promise<number> {
    return guard(() =>
      this.keys.countDocuments(
        { customer_id: customerId, revoked_at: null, $or: [{ expires_at: null }, { expires_at: { $gt: new Date(now) } }] },
        { limit: atMost },
      ),
    );
  }

  updateKey(customerId: string, id: string, patch: KeyPatch, event: (k: KeyRecord) => AuditEvent) {
    return this.keyLocks.run(id, () => this.updateKeyNow(customerId, id, patch, event));
  }

  private updateKeyNow(customerId: string, id: string, patch: KeyPatch, event: (k: KeyRecord) => AuditEvent) {
    const set: Partial<KeyDoc> = { updated_at: new Date(patch.updatedAt) };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.metadata !== undefined) {
      set.metadata = patch.metadata;
      set.metadata_pairs = metadataPairs(patch.metadata);
    }
    if (patch.enabled !== undefined) set.enabled = patch.enabled;
    if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt === null ? null : new Date(patch.expiresAt);
    return guard(async () => {
      const doc = await this.keys.findOneAndUpdate({ _id: id, customer_id: customerId }, { $set: set }, { returnDocument: "after" });
      if (!doc) return null;
      const [updated] = await this.withUsage([docToKey(doc)]);
      await this.events.insertOne(eventToDoc(event(updated!)));
      return updated!;
    });
  }

  revokeKey(customerId: string, id: string, at: number, event: (k: KeyRecord) => AuditEvent) {
    return this.keyLocks.run(id, () => this.revokeKeyNow(customerId, id, at, event));
  }

  private revokeKeyNow(customerId: string, id: string, at: number, event: (k: KeyRecord) => AuditEvent) {
    return guard(async () => {
      const doc = await this.keys.findOneAndUpdate(
        { _id: id, customer_id: customerId, revoked_at: null },
        { $set: { revoked_at: new Date(at), updated_at: new Date(at) } },
        { returnDocument: "after" },
      );
      if (doc) {
        const [key] = await this.withUsage([docToKey(doc)]);
        await this.events.insertOne(eventToDoc(event(key!)));
        return { key: key!, changed: true };
      }
      const existing = await this.keys.findOne({ _id: id, customer_id: customerId });
      return existing ? { key: (await this.withUsage([docToKey(existing)]))[0]!, changed: false } : null;
    });
  }

  changedKeyDigests(sinceMs: number): Promise<string[]> {
    return guard(async () =>
      (await this.keys.find({ updated_at: { $gte: new Date(sinceMs) } }, { projection: { digest: 1 } }).toArray()).map((d) => d.digest),
    );
  }

  /**
   * Usage lives in `api_key_usage`, one document per key per writer slot (writer-slot.ts), so key
   * documents are only written by user actions (update, revoke) and no two live processes ever
   * `$inc` the same document. (FerretDB 1.24 loses concurrent updates to one document, which made
   * a usage flush racing a revoke undo the revoke.) Readers sum a key's documents.
   */
  recordUsage(deltas: UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return Promise.resolve();
    return guard(async () => {
      const writer = await this.usageWriter.name();
      await this.usage.bulkWrite(
        deltas.map((d) => ({
          updateOne: {
            filter: { _id: `${d.keyId}:${writer}` },
            update: {
              $inc: { total_requests: d.count },
              $max: { last_used_at: new Date(d.lastUsedAt) },
              $set: { key_id: d.keyId },
            },
            upsert: true,
          },
        })),
        { ordered: false },
      );
    });
  }

  /** Adds the summed usage documents to each record. */
  private async withUsage(keys: KeyRecord[]): Promise<KeyRecord[]> {
    if (keys.length === 0) return keys;
    const docs = decodeRaw<UsageDoc>(await this.usage.find({ key_id: { $in: keys.map((k) => k.id) } }, { raw: true, projection: USAGE_PROJECTION }).toArray());
    const byKey = new Map<string, { total: number; last: number | null }>();
    for (const d of docs) {
      const u = byKey.get(d.key_id) ?? { total: 0, last: null };
      u.total += d.total_requests;
      const last = d.last_used_at?.getTime() ?? null;
      if (last !== null && (u.last === null || last > u.last)) u.last = last;
      byKey.set(d.key_id, u);
    }
    return keys.map((k) => {
      const u = byKey.get(k.id);
      if (!u) return k;
      const last = u.last === null ? k.lastUsedAt : Math.max(u.last, k.lastUsedAt ?? 0);
      return { ...k, totalRequests: k.totalRequests + u.total, lastUsedAt: last };
    });
  }

  appendAuditEvents(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return guard(async () => {
      await this.events.insertMany(events.map(eventToDoc), { ordered: false });
    });
  }

  listAuditEvents(q: AuditQuery): Promise<AuditEvent[]> {
    const filter: Filter<AuditDoc> = {};
    if (q.customerId !== null) filter.customer_id = q.customerId;
    if (q.instanceId !== null) filter.instance_id = q.instanceId;
    if (q.action !== null) filter.action = q.action;
    if (q.targetId !== null) filter.target_id = q.targetId;
    if (q.since !== null || q.until !== null) {
      filter.time = {
        ...(q.since !== null && { $gte: new Date(q.since) }),
        ...(q.until !== null && { $lt: new Date(q.until) }),
      };
    }
    if (q.beforeId !== null) filter._id = { $lt: q.beforeId };
    return guard(async () => (await this.events.find(filter).sort({ _id: -1 }).limit(q.limit).toArray()).map(docToEvent));
  }

  purgeFailureEvents(beforeMs: number, limit: number): Promise<number> {
    return guard(async () => {
      const old = await this.events
        .find({ outcome: "failure", time: { $lt: new Date(beforeMs) } }, { projection: { _id: 1 } })
        .sort({ time: 1 })
        .limit(limit)
        .toArray();
      if (old.length === 0) return 0;
      return (await this.events.deleteMany({ _id: { $in: old.map((d) => d._id) } })).deletedCount;
    });
  }

  /**
   * Buckets are versioned documents `{_id: "<customer>:<v>"}`: read the newest version, decide,
   * insert version v+1. The unique `_id` makes the insert the compare-and-set — of two replicas
   * that read the same version, exactly one inserts the next and the other re-reads — so N
   * replicas never spend the same tokens. (A conditional `updateOne` on a version field is not
   * atomic under concurrency on FerretDB 1.24; a unique insert is, on every server.) Older
   * versions are deleted behind.
   */
  updateBucket<T>(
    customerId: string,
    defaults: RateLimitPolicy,
    decide: (state: BucketState | null, policy: RateLimitPolicy) => { next: BucketState; decision: T },
  ): Promise<T> {
    return guard(async () => {
      for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        if (attempt > 0) await sleep(Math.random() * Math.min(50, 2 ** attempt)); // jittered backoff
        const [latest, policyDoc] = await Promise.all([
          this.buckets.find({ customer_id: customerId }).sort({ v: -1 }).limit(1).next(),
          this.policies.findOne({ _id: customerId }),
        ]);
        const policy = policyDoc ? { capacity: policyDoc.capacity, refillPerSecond: policyDoc.refill_per_second } : defaults;
        const { next, decision } = decide(latest ? { tokens: latest.tokens, at: latest.at } : null, policy);
        const v = (latest?.v ?? 0) + 1;
        try {
          await this.buckets.insertOne({
            _id: `${customerId}:${v}`,
            customer_id: customerId,
            v,
            tokens: next.tokens,
            at: next.at,
            created: new Date(),
          });
        } catch (e) {
          if (isDuplicateKey(e)) continue;
          throw e;
        }
        // Only versions older than any request can take are deleted: a version that a slow reader
        // could still try to insert again must keep existing, or its insert would not conflict.
        if (latest && v % 64 === 0) {
          const old = new Date(Date.now() - BUCKET_VERSION_TTL_MS);
          void this.buckets.deleteMany({ customer_id: customerId, v: { $lt: v }, created: { $lt: old } }).catch(() => {});
        }
        return decision;
      }
      throw new StorageUnavailableError("rate limit is under heavy contention, try again");
    });
  }

  setRateLimitPolicy(customerId: string, policy: RateLimitPolicy): Promise<void> {
    return guard(async () => {
      await this.policies.updateOne(
        { _id: customerId },
        { $set: { capacity: policy.capacity, refill_per_second: policy.refillPerSecond } },
        { upsert: true },
      );
    });
  }

  insertSession(session: SessionRecord, maxPerSubject: number): Promise<void> {
    return guard(() => this.dashboard.insertSession(session, maxPerSubject));
  }
  findSession(digest: string): Promise<SessionRecord | null> {
    return guard(() => this.dashboard.findSession(digest));
  }
  touchSession(digest: string, at: number): Promise<void> {
    return guard(() => this.dashboard.touchSession(digest, at));
  }
  deleteSession(digest: string): Promise<void> {
    return guard(() => this.dashboard.deleteSession(digest));
  }
  deleteSessionsOfKey(keyId: string): Promise<number> {
    return guard(() => this.dashboard.deleteSessionsOfKey(keyId));
  }
  takeGrant(digest: string): Promise<SessionRecord | null> {
    return guard(() => this.dashboard.takeGrant(digest));
  }
  deleteExpiredSessions(now: number): Promise<void> {
    return guard(() => this.dashboard.deleteExpiredSessions(now));
  }
  recordHourlyUsage(deltas: HourlyUsageDelta[]): Promise<void> {
    return guard(() => this.dashboard.recordHourlyUsage(deltas));
  }
  hourlyUsage(query: HourlyUsageQuery): Promise<HourlyUsageRow[]> {
    return guard(() => this.dashboard.hourlyUsage(query));
  }
  deleteHourlyUsageBefore(hour: number): Promise<void> {
    return guard(() => this.dashboard.deleteHourlyUsageBefore(hour));
  }

  ping(): Promise<void> {
    return guard(async () => {
      await this.client.db("admin").command({ ping: 1 });
    });
  }

  async close(): Promise<void> {
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    await this.usageWriter.release().catch(() => {}); // else its lease ends on its own
    await this.client.close();
  }
}

/** The store's driver options (also the bench's clients, so they measure the same pool). */
export function mongoClientOptions(timeoutMs = 2000): MongoClientOptions {
  return {
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    socketTimeoutMS: Math.max(10_000, timeoutMs * 5),
    maxPoolSize: 50,
    retryWrites: false, // FerretDB has no retryable writes; our writes are idempotent or CAS'd
    appName: "zpk",
  };
}

/** The driver hands back BSON binary as `Binary`. */
function binaryOf(raw: unknown): Uint8Array | null {
  if (raw === null || raw === undefined) return null;
  if (raw instanceof Binary) return new Uint8Array(raw.buffer.subarray(0, raw.length()));
  return new Uint8Array(raw as Uint8Array);
}

/** The most keys one listKeys reads: a page and one more (domain/page-token.ts pageOf), so one batch holds them. */
export const PAGE_READ_MAX = LIMITS.pageSizeMax + 1;

/** Fields a key listing needs: all but the ones only filters use (also the bench's minimal list on MongoDB). */
export const LIST_PROJECTION = { metadata_pairs: 0, pending_write: 0 };
const USAGE_PROJECTION = { key_id: 1, total_requests: 1, last_used_at: 1 };

/** Documents read with `raw: true` (the driver then hands back each one's BSON bytes). */
const decodeRaw = <T>(docs: unknown[]): T[] => docs.map((b) => BSON.deserialize(b as Uint8Array) as T);

/** Keys per insertMany of a batch. */
const INSERT_CHUNK = 25;

const date = (ms: number | null) => (ms === null ? null : new Date(ms));

/** listKeys's one `find` command (also timed by bench/mongo-driver.ts). */
export const listKeysCommand = (collection: string, q: KeyListQuery) => ({
  find: collection,
  filter: keyFilter(q),
  projection: LIST_PROJECTION,
  sort: { _id: -1 },
  limit: q.limit,
  singleBatch: true,
});

/**
 * The filter of a key listing (and its count): committed keys of the customer matching the query.
 * bench/lib/bare-http.ts's minimal list on MongoDB sends the same query.
 */
export function keyFilter(q: KeyListQuery): Filter<KeyDoc> {
  const and: Filter<KeyDoc>[] = [{ customer_id: q.customerId }, { pending_write: null }];
  if (q.instanceId !== null) and.push({ instance_id: q.instanceId });
  if (!q.includeInactive) {
    and.push({ revoked_at: null });
    and.push({ $or: [{ expires_at: null }, { expires_at: { $gt: new Date(q.now) } }] });
  }
  if (q.beforeId !== null) and.push({ _id: { $lt: q.beforeId } });
  for (const pair of metadataPairs(q.metadata ?? {})) and.push({ metadata_pairs: pair });
  return { $and: and };
}

/** The URI's hosts without credentials, for error messages. */
const hostsOf = (uri: string) => uri.replace(/^mongodb(\+srv)?:\/\/([^@/]*@)?/, "").split("/")[0];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const isDuplicateKey = (e: unknown) => e instanceof MongoError && e.code === 11000;

/**
 * Driver failures become StorageUnavailableError (503 / UNAVAILABLE): unreachable server,
 * timeouts, network errors, a closed client. Duplicate keys and other server answers pass through.
 */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof MongoError && !isDuplicateKey(e)) {
      const name = e.name;
      if (/Network|Timeout|ServerSelection|NotConnected|Topology|PoolCleared|Closed/.test(name) || e.hasErrorLabel?.("RetryableWriteError")) {
        throw new StorageUnavailableError(undefined, e);
      }
    }
    // The driver can also surface a bare socket error when the server dies mid-write.
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^(EPIPE|ECONNRESET|ECONNREFUSED|ETIMEDOUT|ECONNABORTED|EHOSTUNREACH)$/.test(code)) {
      throw new StorageUnavailableError(undefined, e);
    }
    throw e;
  }
}
