import type Database from "better-sqlite3";
import { FileVersion } from "./file-version.js";

/** Most answers kept per process. */
export const LIST_CACHE_ENTRIES = 256;
/** Most heap the kept answers take per process, by the estimate of `sizeOf` (oldest dropped first). */
export const LIST_CACHE_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Recent `listKeys` answers of one SqliteStore, as frozen records, reused while the database file is
 * exactly as it was when they were read:
 * - no commit by any other connection (the other workers of `WORKERS`, the `keys` CLI):
 *   `PRAGMA data_version` is unchanged (read by `fileVersion`, once for every list of a turn);
 * - no row written by this connection: `total_changes()` is unchanged;
 * - no key of the answer has reached its `expires_at` since (an active-only list drops it then).
 * Any write at all, including a usage flush or a readiness probe, empties the cache, so an answer
 * is never older than the file. Reading a 10-key page and building its records cost 45 µs (90 µs
 * under load), most of it better-sqlite3 turning rows into JS values; a `listKeys` answered from
 * the cache, checks included, costs about 5 µs.
 * Bounded at LIST_CACHE_ENTRIES answers and LIST_CACHE_MAX_BYTES, the oldest dropped first; an
 * answer larger than the byte bound on its own is not kept.
 */
export class ListCache<Row> {
  private readonly dataVersion: FileVersion;
  private readonly totalChanges: Database.Statement<[], number>;
  /** `data_version` and `total_changes()` when the kept answers were read. */
  private version = -1;
  private changes = -1;
  private readonly answers = new Map<string, { rows: Row[]; readAt: number; until: number; bytes: number }>();
  private bytes = 0;

  /**
   * `sizeOf`: an estimate of a row's heap bytes. `guard`: how the store maps a failed SQLite call
   * (here, of the `fileVersion` reading) to its errors.
   */
  constructor(db: Database.Database, private readonly sizeOf: (row: Row) => number, guard?: <T>(fn: () => T) => T) {
    this.dataVersion = new FileVersion(db, guard);
    this.totalChanges = db.prepare<[], number>("SELECT total_changes()").pluck();
  }

  /** The file's `data_version`, read once for all the lists of a turn, after they asked (file-version.ts). */
  fileVersion(): Promise<number> {
    return this.dataVersion.read();
  }

  /**
   * The rows of `query` at `now`: from the cache if still exact, else from `read`. `version` is a
   * reading of `fileVersion()` asked for by this list; `until` is when the rows stop being the answer
   * without any write (the earliest expiry among them, or Infinity). The two counters are read
   * before the rows, so rows newer than them are only ever dropped early.
   */
  rows(version: number, query: string, now: number, read: () => Row[], until: (rows: Row[]) => number): Row[] {
    const changes = this.totalChanges.get()!;
    if (version !== this.version || changes !== this.changes) {
      this.answers.clear();
      this.bytes = 0;
      this.version = version;
      this.changes = changes;
    }
    const hit = this.answers.get(query);
    if (hit && now >= hit.readAt && now < hit.until) return hit.rows;
    const rows = read();
    if (hit) this.drop(query, hit.bytes);
    let bytes = query.length * 2;
    for (const row of rows) bytes += this.sizeOf(row);
    if (bytes > LIST_CACHE_MAX_BYTES) return rows;
    while (this.answers.size > 0 && (this.answers.size >= LIST_CACHE_ENTRIES || this.bytes + bytes > LIST_CACHE_MAX_BYTES)) {
      const [oldest, entry] = this.answers.entries().next().value!;
      this.drop(oldest, entry.bytes);
    }
    this.answers.set(query, { rows, readAt: now, until: until(rows), bytes });
    this.bytes += bytes;
    return rows;
  }

  private drop(query: string, bytes: number): void {
    this.answers.delete(query);
    this.bytes -= bytes;
  }
}
