import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { LIST_CACHE_ENTRIES, LIST_CACHE_MAX_BYTES, ListCache } from "../../src/storage/sqlite/list-cache.js";

/** The bounds of SqliteStore's list cache: what a client can make it hold. */
describe("ListCache", () => {
  const setup = () => {
    const db = new Database(":memory:");
    const cache = new ListCache<string>(db, (row) => row.length * 2);
    let reads = 0;
    const rows = (query: string, answer: string[] = [query]) =>
      cache.rows(0, query, 0, () => (reads++, answer), () => Infinity);
    return { db, rows, reads: () => reads };
  };

  it(`keeps at most ${LIST_CACHE_ENTRIES} answers, dropping the oldest first`, () => {
    const c = setup();
    for (let i = 0; i <= LIST_CACHE_ENTRIES; i++) c.rows(`q${i}`);
    expect(c.reads()).toBe(LIST_CACHE_ENTRIES + 1);
    c.rows(`q${LIST_CACHE_ENTRIES}`);
    c.rows("q1");
    expect(c.reads()).toBe(LIST_CACHE_ENTRIES + 1);
    c.rows("q0");
    expect(c.reads()).toBe(LIST_CACHE_ENTRIES + 2);
    c.db.close();
  });

  it(`keeps at most ${LIST_CACHE_MAX_BYTES} bytes of answers, and none larger than that alone`, () => {
    const c = setup();
    const third = ["x".repeat(LIST_CACHE_MAX_BYTES / 6)];
    c.rows("a", third);
    c.rows("b", third);
    c.rows("c", third); // over the bound with a and b: a goes
    c.rows("b", third);
    c.rows("c", third);
    expect(c.reads()).toBe(3);
    c.rows("a", third);
    expect(c.reads()).toBe(4);
    const huge = ["x".repeat(LIST_CACHE_MAX_BYTES)];
    c.rows("huge", huge);
    c.rows("huge", huge);
    expect(c.reads()).toBe(6);
    c.db.close();
  });
});
