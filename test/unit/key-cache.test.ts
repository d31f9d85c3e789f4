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
    const cache = new KeyCache(store, { maxKeys: 10, maxUnknown: 10, ttlMs: 60_000, pollIntervalMs: 60_000 }, Date.now, log);

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
