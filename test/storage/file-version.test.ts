import Database from "better-sqlite3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileVersion } from "../../src/storage/sqlite/file-version.js";

/** Two connections to one WAL file, as two workers (or a worker and the keys CLI) have. */
function twoConnections() {
  const file = join(mkdtempSync(join(tmpdir(), "zpk-file-version-")), "zpk.sqlite");
  const ours = new Database(file);
  ours.pragma("journal_mode = WAL");
  ours.exec("CREATE TABLE t (x)");
  const other = new Database(file);
  const commit = () => other.prepare("INSERT INTO t VALUES (1)").run();
  return { ours, other, commit, close: () => (other.close(), ours.close()) };
}

describe("FileVersion: data_version read once for the lists of a turn", () => {
  it("shows a commit made after a caller asked and before the reading, to every caller that asked", async () => {
    const c = twoConnections();
    const version = new FileVersion(c.ours);
    const before = c.ours.pragma("data_version", { simple: true });
    const first = version.read();
    c.commit(); // acknowledged to its client; that client now lists
    const second = version.read();
    expect(await second).not.toBe(before);
    expect(await first).toBe(await second); // one reading for both
    c.close();
  });

  it("gives a caller that asks after a reading was taken a reading of its own", async () => {
    const c = twoConnections();
    const version = new FileVersion(c.ours);
    const first = await version.read();
    c.commit();
    expect(await version.read()).not.toBe(first);
    c.close();
  });

  it("fails every caller of a reading with the store's error when the file cannot be read", async () => {
    const c = twoConnections();
    const version = new FileVersion(c.ours, (fn) => {
      try {
        return fn();
      } catch {
        throw new Error("storage is closed");
      }
    });
    const both = [version.read(), version.read()];
    c.close();
    for (const p of both) await expect(p).rejects.toThrow("storage is closed");
  });
});
