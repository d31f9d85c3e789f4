import { describeDashboardStoreContract } from "./dashboard-store-contract.js";
import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { StorageUnavailableError } from "../../src/domain/errors.js";
import { MongoStore } from "../../src/storage/mongo/mongo-store.js";
import { freshDbName, mongoServer, mongoUri } from "../helpers/mongo.js";
import { describeStoreContract } from "./store-contract.js";

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
});
