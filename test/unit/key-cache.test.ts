import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { KeyCache } from "../../src/domain/key-cache.js";
import type { Store } from "../../src/storage/store.js";
import { SqliteStore } from "../../src/storage/sqlite/sqlite-store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A real SQLite store whose "which keys changed" query waits until released, like a slow database. */
function slowPollStore() {
  const dir = mkdtempSync(join(tmpdir(), "zpk-key-cache-"));
  dirs.push(dir);
  const store = new SqliteStore(dir);
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const slow = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "changedKeyDigests") {
        return async (since: number) => {
          await gate;
          return target.changedKeyDigests(since);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  }) as Store;
  return { store: slow, release };
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
