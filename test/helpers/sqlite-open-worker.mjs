// A worker thread for test/storage/sqlite-open-race.test.ts: opens (and closes) the real
// SqliteStore on each directory, all threads starting each directory at the same moment.
import { parentPort, workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
const { SqliteStore } = await import("../../src/storage/sqlite/sqlite-store.ts");
const { dirs, barrier, threads } = workerData;
const arrived = new Int32Array(barrier);
const failures = [];
for (let i = 0; i < dirs.length; i++) {
  Atomics.add(arrived, 0, 1);
  while (Atomics.load(arrived, 0) < threads * (i + 1)) {
    /* spin: the threads must open the same new file within microseconds of each other */
  }
  try {
    new SqliteStore(dirs[i]).close();
  } catch (e) {
    failures.push(`${e.message} (${e.cause?.code ?? e.code})`);
  }
}
parentPort.postMessage(failures);
