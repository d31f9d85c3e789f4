import { describeDashboardStoreContract } from "./dashboard-store-contract.js";
import { randomBytes, randomUUID } from "node:crypto";
import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { StorageUnavailableError } from "../../src/domain/errors.js";
import type { KeyRecord } from "../../src/domain/types.js";
import { LIMITS } from "../../src/domain/validation.js";
import { type KeyDoc, keyToDoc } from "../../src/storage/mongo/documents.js";
import { MongoStore, PAGE_READ_MAX } from "../../src/storage/mongo/mongo-store.js";
import { freshDbName, mongoServer, mongoUri } from "../helpers/mongo.js";
import { sleep } from "../helpers/server.js";
import { describeStoreContract, keyId, keyRecord, listQuery } from "./store-contract.js";

/**
 * The shared storage contract against the MongoDB store, on FerretDB (or a real MongoDB with
 * TEST_MONGODB_URI=mongodb://… npm test). Each case gets a database of its own.
 *
 * FerretDB differences met so far: none that the store had to special-case beyond what it does
 * anyway for portability (no transactions, no retryable writes: `retryWrites=false`).
 */
const freshMongoStore = async () => {
  const db = freshDbName();
  const store = await MongoStore.connect(mongoUri(), db);
  return {
    store,
    cleanup: async () => {
      await store.close();
      const c = new MongoClient(mongoUri());
      await c.db(db).dropDatabase().catch(() => {});
      await c.close();
    },
  };
};
describeDashboardStoreContract(`MongoStore on ${mongoServer()}`, freshMongoStore);

describeStoreContract(`MongoStore on ${mongoServer()}`, async () => {
  const db = freshDbName();
  const store = await MongoStore.connect(mongoUri(), db);
  return {
    store,
    cleanup: async () => {
      await store.close();
      const c = new MongoClient(mongoUri());
      await c.db(db).dropDatabase().catch(() => {});
      await c.close();
    },
  };
});

describe("MongoStore (MongoDB only)", () => {
  it("creates its indexes idempotently: a second start on the same database succeeds", async () => {
    const db = freshDbName();
    const a = await MongoStore.connect(mongoUri(), db);
    const b = await MongoStore.connect(mongoUri(), db);
    await Promise.all([a.ping(), b.ping()]);
    const c = new MongoClient(mongoUri());
    const names = (await c.db(db).collection("api_keys").indexes()).map((i) => i.name);
    expect(names).toEqual(expect.arrayContaining(["digest_unique", "customer_newest", "updated_at"]));
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("an unreachable server fails fast with StorageUnavailableError, not a hang", async () => {
    const started = Date.now();
    await expect(MongoStore.connect("mongodb://127.0.0.1:1/", freshDbName(), { timeoutMs: 500 })).rejects.toBeInstanceOf(
      StorageUnavailableError,
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("keys written before issue 13 (no enabled, rolled_*, last_four, metadata_pairs, pending_write) are found, listed, counted and usable", async () => {
    const db = freshDbName();
    const store = await MongoStore.connect(mongoUri(), db);
    const c = new MongoClient(mongoUri());
    const customer = randomUUID();
    const id = keyId();
    const digest = randomBytes(32).toString("hex");
    const at = new Date(Date.UTC(2026, 0, 1));
    await c.db(db).collection("api_keys").insertOne({
      _id: id as never, customer_id: customer, instance_id: null, name: "old", prefix: "zpk_live_oldoldol", environment: "live",
      scopes: [], metadata: {}, digest, last_used_at: null, total_requests: 0, expires_at: null, created_at: at, updated_at: at, revoked_at: null,
    });
    const found = await store.findKeyByDigest(digest);
    expect(found).toMatchObject({ id, enabled: true, rolledFrom: null, rolledTo: null, predecessorGraceMs: null, lastFour: "" });
    expect(await store.findKey(customer, id)).not.toBeNull();
    const q = { customerId: customer, instanceId: null, includeInactive: false, now: at.getTime(), beforeId: null, limit: 10 };
    expect((await store.listKeys(q)).map((k) => k.id)).toEqual([id]);
    expect(await store.countKeys(q)).toBe(1);
    await Promise.all([store.close(), c.close()]);
  });
});

/** A committed key document of `customer` (store-contract.ts's keyRecord), as MongoStore writes it. */
const storedKey = (customer: string, at: number, over: Partial<KeyRecord> = {}): KeyDoc =>
  keyToDoc(keyRecord({ customerId: customer, createdAt: at, updatedAt: at, ...over }));

describe("MongoStore listKeys (MongoDB only)", () => {
  it("a page of the largest keys the limits allow, one more than page_size's maximum, comes back whole", async () => {
    const db = freshDbName();
    const store = await MongoStore.connect(mongoUri(), db);
    const c = new MongoClient(mongoUri());
    try {
      const customer = randomUUID();
      const wide = (n: number, i: number) => `${i}`.padEnd(n, "𝔸"); // 4 bytes a character in UTF-8
      const metadata = Object.fromEntries(Array.from({ length: LIMITS.metadataEntries }, (_, i) => [wide(LIMITS.metadataKeyChars, i), wide(LIMITS.metadataValueChars, i)]));
      const at = Date.UTC(2026, 0, 1);
      const keys = Array.from({ length: PAGE_READ_MAX }, (_, i) =>
        storedKey(customer, at, { name: wide(LIMITS.nameChars, i), metadata, scopes: Array.from({ length: LIMITS.scopes }, (_, s) => `scope:${s}`.padEnd(100, "x")) }),
      );
      for (let i = 0; i < keys.length; i += 25) await c.db(db).collection<KeyDoc>("api_keys").insertMany(keys.slice(i, i + 25));
      const q = listQuery({ customerId: customer, now: at });
      const page = await store.listKeys({ ...q, limit: PAGE_READ_MAX });
      expect(page.map((k) => k.id)).toEqual(keys.map((k) => k._id).sort().reverse());
      expect(page.every((k) => Object.keys(k.metadata).length === LIMITS.metadataEntries && k.scopes.length === LIMITS.scopes)).toBe(true);
      await expect(store.listKeys({ ...q, limit: PAGE_READ_MAX + 1 })).rejects.toBeInstanceOf(RangeError);
    } finally {
      await store.close();
      await c.db(db).dropDatabase().catch(() => {});
      await c.close();
    }
  });
});

describe("MongoStore usage writer slots (MongoDB only)", () => {
  const at = Date.UTC(2026, 0, 1);
  /** A database with one key in it, and a client to look at its collections. */
  const withKey = async () => {
    const db = freshDbName();
    const c = new MongoClient(mongoUri());
    const customer = randomUUID();
    const key = storedKey(customer, at);
    await c.db(db).collection<KeyDoc>("api_keys").insertOne(key);
    const id = key._id;
    const usageIds = async () => (await c.db(db).collection("api_key_usage").find({ key_id: id }).toArray()).map((d) => String(d._id)).sort();
    const done = async () => {
      await c.db(db).dropDatabase().catch(() => {});
      await c.close();
    };
    return { db, c, id, customer, usageIds, done };
  };
  /** A test body run against a fresh database holding one key, dropped afterwards. */
  const inKeyDb = (body: (k: Awaited<ReturnType<typeof withKey>>) => Promise<void>) => async () => {
    const k = await withKey();
    try {
      await body(k);
    } finally {
      await k.done();
    }
  };

  it("processes started one after another reuse one usage document per key, and the key shows every use", inKeyDb(async (k) => {
    for (let start = 0; start < 5; start++) {
      const store = await MongoStore.connect(mongoUri(), k.db);
      await store.recordUsage([{ keyId: k.id, count: 3, lastUsedAt: at + start }]);
      await store.close();
    }
    expect(await k.usageIds()).toEqual([`${k.id}:w0`]);
    const store = await MongoStore.connect(mongoUri(), k.db);
    expect(await store.findKey(k.customer, k.id)).toMatchObject({ totalRequests: 15, lastUsedAt: at + 4 });
    await store.close();
  }));

  it("processes running at once write apart, and a later one takes over a stopped one's slot", inKeyDb(async (k) => {
    const [a, b] = [await MongoStore.connect(mongoUri(), k.db), await MongoStore.connect(mongoUri(), k.db)];
    await Promise.all([a.recordUsage([{ keyId: k.id, count: 1, lastUsedAt: at }]), b.recordUsage([{ keyId: k.id, count: 2, lastUsedAt: at }])]);
    expect(await k.usageIds()).toEqual([`${k.id}:w0`, `${k.id}:w1`]);
    await a.close();
    const c = await MongoStore.connect(mongoUri(), k.db);
    await c.recordUsage([{ keyId: k.id, count: 4, lastUsedAt: at }]);
    expect(await k.usageIds()).toEqual([`${k.id}:w0`, `${k.id}:w1`]);
    expect(await c.findKey(k.customer, k.id)).toMatchObject({ totalRequests: 7 });
    await Promise.all([b.close(), c.close()]);
  }));

  it("a crashed process's slot is taken over only once its lease has ended", inKeyDb(async (k) => {
    // What a process that died without freeing slot 0 leaves behind.
    const until = Date.now() + 2500;
    await k.c.db(k.db).collection("usage_writers").insertOne({ _id: 0 as never, holder: "crashed", until: new Date(until) });
    const early = await MongoStore.connect(mongoUri(), k.db);
    await early.recordUsage([{ keyId: k.id, count: 1, lastUsedAt: at }]);
    expect(await k.usageIds()).toEqual([`${k.id}:w1`]);
    await sleep(until - Date.now() + 100);
    const late = await MongoStore.connect(mongoUri(), k.db);
    await late.recordUsage([{ keyId: k.id, count: 1, lastUsedAt: at }]);
    expect(await k.usageIds()).toEqual([`${k.id}:w0`, `${k.id}:w1`]);
    await Promise.all([early.close(), late.close()]);
  }));

  it("a process whose slot was taken over claims another one before it writes again", inKeyDb(async (k) => {
    const store = await MongoStore.connect(mongoUri(), k.db, { writerLeaseMs: 600 });
    const claimed = Date.now();
    // Another process takes slot 0 over while this one is paused past its lease (a blocked event
    // loop: no renewal runs), then five writes start at once beside the late renewal, each of
    // another key (the usage recorder never overlaps two flushes, and two upserts of one new
    // document at once can collide on its _id).
    await k.c.db(k.db).collection("usage_writers").updateOne({ _id: 0 as never }, { $set: { holder: "other", until: new Date(Date.now() + 60_000) } });
    while (Date.now() < claimed + 650); // the pause
    const others = Array.from({ length: 4 }, () => keyId());
    await Promise.all([k.id, ...others].map((keyId) => store.recordUsage([{ keyId, count: 1, lastUsedAt: at }])));
    expect(await k.usageIds()).toEqual([`${k.id}:w1`]); // one new slot between them all
    const written = await k.c.db(k.db).collection("api_key_usage").find({ key_id: { $in: others } }).toArray();
    expect(written.map((d) => String(d._id)).sort()).toEqual(others.map((o) => `${o}:w1`).sort());
    await store.close();
    const slots = await k.c.db(k.db).collection("usage_writers").find().toArray();
    expect(slots.map((s) => [s._id, s.holder])).toEqual([[0, "other"]]); // one slot claimed and freed, the other's left alone
  }));
});
