/**
 * `npm run bench -- mongo-driver`: what the official `mongodb` driver costs our process per
 * command when the database costs nothing. It talks to bench/lib/instant-mongo.ts (its own
 * process, answering every `find` with a pre-encoded 10-key page) and times, with 64 calls in
 * flight as the list row has requests: a `ping`, the page read through the driver's cursor, and
 * the same page read as one `find` command, as MongoStore.listKeys reads it. Each row is ops/s and this process's CPU
 * (`process.cpuUsage`, user + system) per operation, over `BENCH_MONGO_DRIVER_SECONDS` (3) in each
 * of 3 rounds after a warm-up. The MongoDB pass of the bench shows the store's share of a list;
 * this shows the driver's share, which a faster MongoDB would not take off.
 */
import { once } from "node:events";
import { BSON, type Document, Long, MongoClient } from "mongodb";
import { type KeyDoc, keyToDoc } from "../src/storage/mongo/documents.js";
import { keyFilter, LIST_PROJECTION, listKeysCommand, mongoClientOptions } from "../src/storage/mongo/mongo-store.js";
import { newKeyRecord } from "../src/domain/types.js";
import { LIMITS } from "../src/domain/validation.js";
import { killTree, spawnTracked } from "./lib/proc.js";
import { REPO } from "./lib/server.js";
import { num } from "./lib/settings.js";
import { markdownTable } from "./lib/report.js";

const CUSTOMER = "11111111-1111-4111-8111-111111111111";
const IN_FLIGHT = 64;

/** Ten keys of one customer as listKeys reads them (LIST_PROJECTION's fields left out). */
function page(): Document[] {
  const now = Date.now();
  return Array.from({ length: 10 }, (_, i) => {
    const { metadata_pairs: _pairs, pending_write: _pending, ...doc }: KeyDoc = keyToDoc(newKeyRecord({
      id: `key_${String(i).padStart(26, "0")}`, customerId: CUSTOMER, instanceId: null, name: `bench-${i}`, prefix: "zpk_live_",
      environment: "live", scopes: [], metadata: {}, digest: "0".repeat(64), expiresAt: null, lastFour: "abcd",
    }, now));
    return doc;
  });
}

export async function mongoDriver(): Promise<void> {
  const seconds = num("BENCH_MONGO_DRIVER_SECONDS", 3);
  const batch = BSON.serialize({ cursor: { id: Long.fromNumber(0), ns: "zpk.api_keys", firstBatch: page() }, ok: 1 });
  const child = spawnTracked(process.execPath, ["--import", "tsx", "bench/lib/instant-mongo.ts"], {
    cwd: REPO,
    env: { ...process.env, NODE_OPTIONS: undefined, INSTANT_MONGO_BATCH_HEX: Buffer.from(batch).toString("hex") },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  while (!/instant-mongo ready (\d+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`instant-mongo exited: ${out}`);
    await once(child.stdout!, "data");
  }
  const port = Number(/instant-mongo ready (\d+)/.exec(out)![1]);
  const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { ...mongoClientOptions(), appName: "zpk-bench-driver" });
  try {
    await client.connect();
    const db = client.db("zpk");
    const keys = db.collection<KeyDoc>("api_keys");
    const limit = LIMITS.pageSizeDefault + 1;
    const query = () => ({ customerId: CUSTOMER, instanceId: null, includeInactive: false, now: Date.now(), beforeId: null, limit });
    const rows: [string, () => Promise<unknown>][] = [
      ["ping (the least command)", () => db.command({ ping: 1 })],
      [
        "a 10-key page through the driver's cursor (raw, BSON.deserialize each)",
        async () => (await keys.find(keyFilter(query()), { raw: true, projection: LIST_PROJECTION }).sort({ _id: -1 }).limit(limit).toArray()).map((b) => BSON.deserialize(b as unknown as Uint8Array)),
      ],
      [
        "the same page as one find command (db.command, decoded by the driver): listKeys",
        async () => (await db.command(listKeysCommand("api_keys", query()))).cursor.firstBatch,
      ],
    ];
    const lines: string[][] = [];
    for (const [name, op] of rows) {
      for (let i = 0; i < 2000; i++) await op(); // warm-up
      const rates: number[] = [];
      const cpus: number[] = [];
      for (let round = 0; round < 3; round++) {
        let done = 0;
        const cpu = process.cpuUsage();
        const from = performance.now();
        const until = from + seconds * 1000;
        await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
          while (performance.now() < until) {
            await op();
            done++;
          }
        }));
        const used = process.cpuUsage(cpu);
        rates.push(done / ((performance.now() - from) / 1000));
        cpus.push((used.user + used.system) / done);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
      lines.push([name, Math.round(median(rates)).toLocaleString("en-US"), rates.map((r) => Math.round(r).toLocaleString("en-US")).join(" / "), String(Math.round(median(cpus)))]);
    }
    process.stdout.write(`the mongodb driver against a database that costs nothing (bench/lib/instant-mongo.ts), ${IN_FLIGHT} in flight, median of 3 rounds of ${seconds} s\n\n`);
    process.stdout.write(`${markdownTable(["operation", "ops/s", "ops/s per round", "our CPU µs/op"], lines)}\n`);
  } finally {
    await client.close();
    killTree(child);
  }
}
