import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/storage/sqlite/sqlite-store.js";
import type { Store } from "../../src/domain/store.js";

type Wrappers = { [K in keyof Store]?: (original: Store[K]) => Store[K] };

const dirs: string[] = [];

/**
 * A real SQLite store in a fresh directory with some of its methods wrapped (held at a gate like a
 * slow database, counted), for unit tests of the domain's timing around the store. Call
 * `removeWrappedStores` in `afterEach`.
 */
export function wrappedSqliteStore(wrappers: Wrappers): Store {
  const dir = mkdtempSync(join(tmpdir(), "zpk-unit-"));
  dirs.push(dir);
  const store = new SqliteStore(dir);
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      const bound = typeof v === "function" ? v.bind(target) : v;
      const wrap = wrappers[prop as keyof Store] as ((original: unknown) => unknown) | undefined;
      return wrap ? wrap(bound) : bound;
    },
  }) as Store;
}

export function removeWrappedStores(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A promise to hold a call at, and the function that lets it through. */
export function gate(): { passed: Promise<void>; release: () => void } {
  let release: () => void = () => {};
  const passed = new Promise<void>((r) => (release = r));
  return { passed, release };
}
