import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, expect, it } from "vitest";

/**
 * `WORKERS` > 1 on a fresh DATA_DIR: every worker opens the same new SQLite file at once. Opening
 * must not fail with "storage is unavailable" (SQLITE_BUSY while another opener switches the new
 * file to WAL), or the server exits at start. Three threads open each of 200 new files together.
 */
const FILES = 200;
const THREADS = 3;
const dirs = Array.from({ length: FILES }, () => mkdtempSync(join(tmpdir(), "zpk-open-race-")));
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

it(`${THREADS} threads opening each of ${FILES} new SQLite files at the same moment: every open succeeds`, async () => {
  const barrier = new SharedArrayBuffer(4);
  const failures = (
    await Promise.all(
      Array.from(
        { length: THREADS },
        () =>
          new Promise<string[]>((resolve, reject) => {
            const w = new Worker(new URL("../helpers/sqlite-open-worker.mjs", import.meta.url), { workerData: { dirs, barrier, threads: THREADS } });
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    )
  ).flat();
  expect(failures, `${failures.length} of ${FILES * THREADS} opens failed`).toEqual([]);
}, 60_000);
