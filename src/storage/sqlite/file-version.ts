import type Database from "better-sqlite3";

/**
 * An SQLite file's `PRAGMA data_version`, which changes when another connection commits (the other
 * workers of `WORKERS`, the `keys` CLI), read once for all the callers that asked since the last
 * reading and after every one of them asked: in setImmediate, once the event loop has read and
 * dispatched every request that had arrived. So, as with a reading per caller, a commit
 * acknowledged to anyone before a caller's request arrived is seen by that caller; the caller waits
 * for the end of its turn's I/O, as its answer does (transport/http/coalesced-end.ts).
 *
 * Why: the pragma opens a read transaction, which on a WAL file takes and drops a lock on the
 * `-shm` file (two `fcntl`) and stats the database file, 1.3 µs here: the largest single cost of a
 * REST list answered from the list cache (list-cache.ts), where a loaded server's turn answers
 * many lists.
 */
export class FileVersion {
  private readonly pragma: Database.Statement<[], number>;
  /** The reading the callers asking now will share. */
  private next: Promise<number> | null = null;

  /** `guard`: how the store maps a failed SQLite call to its errors. */
  constructor(
    db: Database.Database,
    private readonly guard: <T>(fn: () => T) => T = (fn) => fn(),
  ) {
    this.pragma = db.prepare<[], number>("PRAGMA data_version").pluck();
  }

  read(): Promise<number> {
    return (this.next ??= new Promise<number>((resolve, reject) => {
      setImmediate(() => {
        this.next = null; // a caller asking from now on waits for a reading of its own
        try {
          resolve(this.guard(() => this.pragma.get()!));
        } catch (e) {
          reject(e);
        }
      });
    }));
  }
}
