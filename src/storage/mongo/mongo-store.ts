import { randomBytes } from "node:crypto";
import { type Collection, type Db, MongoClient, MongoError, type Filter } from "mongodb";
import { StorageUnavailableError } from "../../domain/errors.js";
import type { BucketState } from "../../domain/rate-limit/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitPolicy } from "../../domain/types.js";
import type { AuditQuery, KeyListQuery, KeyPatch, Store, UsageDelta } from "../../domain/store.js";
import { type AuditDoc, type BucketDoc, type PolicyDoc, type UsageDoc, docToEvent, docToKey, eventToDoc, type KeyDoc, keyToDoc } from "./documents.js";
import { ensureIndexes } from "./indexes.js";
import { KeyedQueue } from "./keyed-queue.js";

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
 */
export class MongoStore implements Store {
  private constructor(
    private readonly client: MongoClient,
    private readonly keys: Collection<KeyDoc>,
    private readonly events: Collection<AuditDoc>,
    private readonly buckets: Collection<BucketDoc>,
    private readonly policies: Collection<PolicyDoc>,
    private readonly usage: Collection<UsageDoc>,
  ) {}

  /** This process's usage documents are `<key id>:<writer>`: no two processes write the same one. */
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
        db.collection("api_key_usage"),
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
      return doc ? docToKey(doc) : null; // Authenticate needs no usage counters
    });
  }

  findKey(customerId: string, id: string): Promise<KeyRecord | null> {
    return guard(async () => {
      const doc = await this.keys.findOne({ _id: id, customer_id: customerId });
      return doc ? (await this.withUsage([docToKey(doc)]))[0]! : null;
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
    return guard(async () => this.withUsage((await this.keys.find(filter).sort({ _id: -1 }).limit(q.limit).toArray()).map(docToKey)));
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
    if (patch.metadata !== undefined) set.metadata = patch.metadata;
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
   * Usage lives in `api_key_usage`, one document per key per writing process, so key documents
   * are only written by user actions (update, revoke) and no two processes ever `$inc` the same
   * document. (FerretDB 1.24 loses concurrent updates to one document, which made a usage flush
   * racing a revoke undo the revoke.) Readers sum a key's documents.
   */
  recordUsage(deltas: UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return Promise.resolve();
    return guard(async () => {
      await this.usage.bulkWrite(
        deltas.map((d) => ({
          updateOne: {
            filter: { _id: `${d.keyId}:${this.writer}` },
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
    const docs = await this.usage.find({ key_id: { $in: keys.map((k) => k.id) } }).toArray();
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
    // The driver can also surface a bare socket error when the server dies mid-write.
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^(EPIPE|ECONNRESET|ECONNREFUSED|ETIMEDOUT|ECONNABORTED|EHOSTUNREACH)$/.test(code)) {
      throw new StorageUnavailableError(undefined, e);
    }
    throw e;
  }
}
