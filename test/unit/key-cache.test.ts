import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { KeyCache } from "../../src/domain/key-cache.js";
import { gate, removeWrappedStores, wrappedSqliteStore } from "../helpers/wrapped-store.js";

afterEach(removeWrappedStores);

/** A real SQLite store whose "which keys changed" query waits until released, like a slow database. */
function slowPollStore() {
  const { passed, release } = gate();
  const store = wrappedSqliteStore({
    changedKeyDigests: (original) => async (since) => {
      await passed;
      return original(since);
    },
  });
  return { store, release };
}

describe("KeyCache shutdown", () => {
  it("stop() waits for a poll under way, so the store can close without that query failing", async () => {
    const warnings: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => warnings.push(line) });
    const { store, release } = slowPollStore();
    const cache = new KeyCache(store, { maxKeys: 10, maxBytes: 1 << 20, maxUnknown: 10, ttlMs: 60_000, pollIntervalMs: 60_000 }, Date.now, log);

    void cache.poll();
    let stopped = false;
    const stopping = cache.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped, "stop() returned while the poll's query was still running").toBe(false);

    release();
    await stopping;
    await store.close();
    expect(warnings).toEqual([]);
  });
});

describe("KeyCache memory bound (issue 12)", () => {
  it("is bounded in bytes: keys with the largest metadata fill KEY_CACHE_MAX_BYTES long before KEY_CACHE_SIZE", async () => {
    const { keyRecord, issuedEvent } = await import("../storage/store-contract.js");
    const { keyRecordBytes } = await import("../../src/domain/key-record-bytes.js");
    const store = wrappedSqliteStore({});
    const log = pino({ level: "silent" });
    const maxBytes = 1 << 20;
    const cache = new KeyCache(store, { maxKeys: 50_000, maxBytes, maxUnknown: 10, ttlMs: 60_000, pollIntervalMs: 60_000 }, Date.now, log);
    // 20 metadata entries of 40 + 500 astral characters (two UTF-16 units each) and 50 scopes of 128.
    const metadata = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`${i}`.padStart(2, "0") + "🔑".repeat(38), "🔑".repeat(500)]));
    const scopes = Array.from({ length: 50 }, (_, i) => `s${i}:`.padEnd(128, "x"));
    const keys = Array.from({ length: 60 }, () => keyRecord({ metadata, scopes, name: "🔑".repeat(128) }));
    for (const k of keys) await store.insertKey(k, issuedEvent(k));
    for (const k of keys) expect((await cache.lookup(k.digest))?.id).toBe(k.id);
    const per = keyRecordBytes(keys[0]!);
    expect(per).toBeGreaterThan(50 * 1024); // measured 50.9 KiB of heap per such entry (bench/key-cache-bytes.ts)
    expect(cache.size.knownBytes).toBeLessThanOrEqual(maxBytes);
    expect(cache.size.known).toBe(Math.floor(maxBytes / per));
    // The most recently used stay; the oldest were evicted.
    expect(await cache.lookup(keys[59]!.digest)).not.toBeNull();
    expect(cache.hits).toBeGreaterThan(0);
    await store.close();
  });
});
