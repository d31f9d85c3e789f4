import { type Collection, type Db, MongoClient, MongoError, type Filter } from "mongodb";
import { StorageUnavailableError } from "../../domain/errors.js";
import type { BucketState } from "../../domain/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitDecision, RateLimitPolicy } from "../../domain/types.js";
import type { AuditQuery, KeyListQuery, KeyPatch, Store, UsageDelta } from "../store.js";
import { type AuditDoc, type BucketDoc, type PolicyDoc, docToEvent, docToKey, eventToDoc, type KeyDoc, keyToDoc } from "./documents.js";
import { ensureIndexes } from "./indexes.js";
import { KeyedQueue } from "./keyed-queue.js";

/** How many times a bucket compare-and-set is retried under contention before giving up (503). */
const CAS_ATTEMPTS = 64;

/**
 * The MongoDB store, for several stateless replicas on one replica set or sharded cluster (shard
 * key `customer_id`). It relies only on single-document atomicity — no transactions, change
 * streams, pipeline updates or server-side JS — so it runs on MongoDB, FerretDB and other
 * wire-compatible servers. Why each multi-document write path is safe with that (see README,
 * "MongoDB store"):
 *
 * - issue: the `api_key.issued` event is inserted before the key. A crash between the two leaves
 *   an event for a key that never existed (the client never got a 201), never a key without its
 *   event.
 * - update / revoke: the key changes first (revoke only if not revoked yet, so a second revoke is
 *   a no-op), then the event is appended. A crash in between loses that one event; the change
 *   itself is complete and visible.
 * - rate limit: versioned bucket documents; a unique insert is the compare-and-set (updateBucket).
 */
export class MongoStore implements Store {
  private constructor(
    private readonly client: MongoClient,
    private readonly keys: Collection<KeyDoc>,
    private readonly events: Collection<AuditDoc>,
    private readonly buckets: Collection<BucketDoc>,
    private readonly policies: Collection<PolicyDoc>,
  ) {}

  private readonly bucketLocks = new KeyedQueue();

  /** Connects and creates indexes; throws StorageUnavailableError when the server is unreachable. */
  static async connect(uri: string, dbName: string, opts: { timeoutMs?: number } = {}): Promise<MongoStore> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const client = new MongoClient(uri, {
      serverSelectionTimeoutMS: timeoutMs,
      connectTimeoutMS: timeoutMs,
      socketTimeoutMS: Math.max(10_000, timeoutMs * 5),
      maxPoolSize: 50,
      retryWrites: false, // FerretDB has no retryable writes; our writes are idempotent or CAS'd
      appName: "zpk",
    });
    return guard(async () => {
      await client.connect().catch((e: unknown) => {
        throw new StorageUnavailableError(`cannot reach MongoDB at ${hostsOf(uri)}: ${(e as Error).message}`, e);
      });
      const db: Db = client.db(dbName);
      await ensureIndexes(db);
      return new MongoStore(
        client,
        db.collection("api_keys"),
        db.collection("audit_events"),
        db.collection("rate_limits"),
        db.collection("rate_limit_policies"),
      );
    });
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
      const doc = await this.keys.findOne({ digest });
      return doc ? docToKey(doc) : null;
    });
  }

  findKey(customerId: string, id: string): Promise<KeyRecord | null> {
    return guard(async () => {
      const doc = await this.keys.findOne({ _id: id, customer_id: customerId });
      return doc ? docToKey(doc) : null;
    });
  }

  listKeys(q: KeyListQuery): Promise<KeyRecord[]> {
    const filter: Filter<KeyDoc> = { customer_id: q.customerId };
    if (q.instanceId !== null) filter.instance_id = q.instanceId;
    if (!q.includeInactive) {
      filter.revoked_at = null;
      filter.$or = [{ expires_at: null }, { expires_at: { $gt: new Date(q.now) } }];
    }
    if (q.beforeId !== null) filter._id = { $lt: q.beforeId };
    return guard(async () => (await this.keys.find(filter).sort({ _id: -1 }).limit(q.limit).toArray()).map(docToKey));
  }

  updateKey(customerId: string, id: string, patch: KeyPatch, event: (k: KeyRecord) => AuditEvent) {
    const set: Partial<KeyDoc> = { updated_at: new Date(patch.updatedAt) };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.metadata !== undefined) set.metadata = patch.metadata;
    if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt === null ? null : new Date(patch.expiresAt);
    return guard(async () => {
      const doc = await this.keys.findOneAndUpdate({ _id: id, customer_id: customerId }, { $set: set }, { returnDocument: "after" });
      if (!doc) return null;
      const updated = docToKey(doc);
      await this.events.insertOne(eventToDoc(event(updated)));
      return updated;
    });
  }

  revokeKey(customerId: string, id: string, at: number, event: (k: KeyRecord) => AuditEvent) {
    return guard(async () => {
      const doc = await this.keys.findOneAndUpdate(
        { _id: id, customer_id: customerId, revoked_at: null },
        { $set: { revoked_at: new Date(at), updated_at: new Date(at) } },
        { returnDocument: "after" },
      );
      if (doc) {
        const key = docToKey(doc);
        await this.events.insertOne(eventToDoc(event(key)));
        return { key, changed: true };
      }
      const existing = await this.keys.findOne({ _id: id, customer_id: customerId });
      return existing ? { key: docToKey(existing), changed: false } : null;
    });
  }

  changedKeyDigests(sinceMs: number): Promise<string[]> {
    return guard(async () =>
      (await this.keys.find({ updated_at: { $gte: new Date(sinceMs) } }, { projection: { digest: 1 } }).toArray()).map((d) => d.digest),
    );
  }

  recordUsage(deltas: UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return Promise.resolve();
    return guard(async () => {
      await this.keys.bulkWrite(
        deltas.map((d) => ({
          updateOne: {
            filter: { _id: d.keyId },
            update: { $inc: { total_requests: d.count }, $max: { last_used_at: new Date(d.lastUsedAt) } },
          },
        })),
        { ordered: false },
      );
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

  /**
   * Buckets are versioned documents `{_id: "<customer>:<v>"}`: read the newest version, decide,
   * insert version v+1. The unique `_id` makes the insert the compare-and-set — of two replicas
   * that read the same version, exactly one inserts the next and the other re-reads — so N
   * replicas never spend the same tokens. (A conditional `updateOne` on a version field is not
   * atomic under concurrency on FerretDB 1.24; a unique insert is, on every server.) Older
   * versions are deleted behind.
   */
  updateBucket(
    customerId: string,
    defaults: RateLimitPolicy,
    decide: (state: BucketState | null, policy: RateLimitPolicy) => { next: BucketState; decision: RateLimitDecision },
  ): Promise<RateLimitDecision> {
    // Calls for one customer queue up in this process, so CAS conflicts only come from other replicas.
    return this.bucketLocks.run(customerId, () => this.casBucket(customerId, defaults, decide));
  }

  private casBucket(
    customerId: string,
    defaults: RateLimitPolicy,
    decide: (state: BucketState | null, policy: RateLimitPolicy) => { next: BucketState; decision: RateLimitDecision },
  ): Promise<RateLimitDecision> {
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
          await this.buckets.insertOne({ _id: `${customerId}:${v}`, customer_id: customerId, v, tokens: next.tokens, at: next.at });
        } catch (e) {
          if (isDuplicateKey(e)) continue;
          throw e;
        }
        if (latest) void this.buckets.deleteMany({ customer_id: customerId, v: { $lt: v } }).catch(() => {});
        return decision;
      }
      throw new StorageUnavailableError("rate limit is under heavy contention, try again");
    });
  }

  getRateLimitPolicy(customerId: string): Promise<RateLimitPolicy | null> {
    return guard(async () => {
      const doc = await this.policies.findOne({ _id: customerId });
      return doc ? { capacity: doc.capacity, refillPerSecond: doc.refill_per_second } : null;
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

  ping(): Promise<void> {
    return guard(async () => {
      await this.client.db("admin").command({ ping: 1 });
    });
  }

  async close(): Promise<void> {
    await this.client.close();
  }
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
    throw e;
  }
}
