import { describeDashboardStoreContract } from "./dashboard-store-contract.js";
import { randomBytes, randomUUID } from "node:crypto";
import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { StorageUnavailableError } from "../../src/domain/errors.js";
import { LIMITS } from "../../src/domain/validation.js";
import { type KeyDoc, keyToDoc } from "../../src/storage/mongo/documents.js";
import { MongoStore, PAGE_READ_MAX } from "../../src/storage/mongo/mongo-store.js";
import { freshDbName, mongoServer, mongoUri } from "../helpers/mongo.js";
import { describeStoreContract, keyId } from "./store-contract.js";

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
        keyToDoc({
          id: keyId(), customerId: customer, instanceId: null, name: wide(LIMITS.nameChars, i), prefix: "zpk_live_abcdefgh", environment: "live",
          scopes: Array.from({ length: LIMITS.scopes }, (_, s) => `scope:${s}`.padEnd(100, "x")), metadata, digest: randomBytes(32).toString("hex"),
          lastUsedAt: null, totalRequests: 0, expiresAt: null, createdAt: at, updatedAt: at, revokedAt: null, enabled: true,
          rolledFrom: null, rolledTo: null, predecessorGraceMs: null, lastFour: "abcd",
        }),
      );
      for (let i = 0; i < keys.length; i += 25) await c.db(db).collection<KeyDoc>("api_keys").insertMany(keys.slice(i, i + 25));
      const q = { customerId: customer, instanceId: null, includeInactive: false, now: at, beforeId: null };
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
