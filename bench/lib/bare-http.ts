/**
 * The bare HTTP/1.1 rows of `npm run bench` (issue 17's REST list target), served by the bare
 * server's process (bench/lib/bare-grpc-server.ts) on a port of their own with plain `node:http`:
 *
 * - `GET /healthz`: `{"status":"ok"}`, the same bytes as ours, with nothing else: node's HTTP/1.1
 *   on this machine, which GET /healthz on PORT is compared with.
 * - `GET /v1/api-keys`, the **minimal list**: the least a correct list of one customer's keys does
 *   on the embedded store, and nothing else. It reads `authorization: Bearer <key>` (with
 *   src/service/credentials.ts's bearerToken), hashes the key (SHA-256, our digestKey) and looks the digest
 *   up in a Map, checks that the SQLite file is unchanged since its page was read (`PRAGMA
 *   data_version`, read once a turn for the lists that asked by src/storage/sqlite/file-version.ts
 *   as our list cache reads it, and `SELECT total_changes()` per request, on a WAL file of its
 *   own), and answers the real server's page with a fresh request id
 *   and the rate-limit headers; an unknown key gets 401 (and a changed file, which nothing makes, 503). No rate-limit charge, usage count, audit,
 *   metrics, query parameters or paging: a floor for GET /v1/api-keys on the same transport (no
 *   target; bench/README.md).
 * - On MongoDB (`mongo` set: the bench's MongoDB pass) the freshness check is instead what an exact
 *   list cannot do without there: one round trip. It sends our list's `find` command for the
 *   customer (src/storage/mongo/mongo-store.ts's listKeysCommand) to the real server's `api_keys`
 *   collection, and answers the page if as many documents came back as the page has keys (else
 *   503). No usage read (ours is a second round trip), no records or rendering: a floor for
 *   GET /v1/api-keys on MongoDB, which the store's round trip bounds.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import Database from "better-sqlite3";
import { MongoClient } from "mongodb";
import { digestKey } from "../../src/domain/key-format.js";
import { LIMITS } from "../../src/domain/validation.js";
import { bearerToken } from "../../src/service/credentials.js";
import { listKeysCommand, mongoClientOptions } from "../../src/storage/mongo/mongo-store.js";
import { FileVersion } from "../../src/storage/sqlite/file-version.js";

export interface BareHttpOptions {
  port: number;
  /** The one key the minimal list knows, by its digest (digestKey), and the page it answers. */
  keyDigest: string;
  page: Buffer;
  /** A directory for the minimal list's SQLite file. */
  dir: string;
  /** The MongoDB pass: the real server's database and the customer whose page `page` is. */
  mongo?: { uri: string; db: string; customerId: string };
}

const HEALTH = Buffer.from(JSON.stringify({ status: "ok" }));

export function listenBareHttp(opts: BareHttpOptions, ready: () => void): void {
  const fresh = opts.mongo ? mongoCheck(opts.mongo, opts.page) : sqliteCheck(opts.dir);
  const known = new Map([[opts.keyDigest, opts.page]]);
  const server = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json", "content-length": String(HEALTH.byteLength) });
      res.end(HEALTH);
      return;
    }
    const presented = bearerToken(req.headers.authorization ?? "");
    const page = req.url === "/v1/api-keys" && presented !== null ? known.get(digestKey(presented)) : undefined;
    if (page === undefined) {
      res.writeHead(401, { "content-length": "0" });
      res.end();
      return;
    }
    const answer = (ok: boolean) => {
      // Nothing writes the store: a change would be a fault of the bench, shown as non-2xx answers.
      if (!ok) {
        res.writeHead(503, { "content-length": "0" });
        res.end();
        return;
      }
      res.writeHead(200, {
        "x-request-id": `req_${randomUUID()}`,
        "x-ratelimit-limit": "1000000",
        "x-ratelimit-remaining": "999999",
        "content-type": "application/json",
        "content-length": String(page.byteLength),
      });
      res.end(page);
    };
    fresh().then(answer, () => answer(false));
  });
  server.listen(opts.port, "127.0.0.1", ready);
}

/** The embedded store's check, as our list cache makes it: the SQLite file is unchanged since the page was read. */
function sqliteCheck(dir: string): () => Promise<boolean> {
  const db = new Database(join(dir, `bare-${process.pid}.sqlite`));
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY)");
  const dataVersion = new FileVersion(db);
  const totalChanges = db.prepare<[], number>("SELECT total_changes()").pluck();
  const read = { version: db.pragma("data_version", { simple: true }) as number, changes: totalChanges.get()! };
  return async () => (await dataVersion.read()) === read.version && totalChanges.get() === read.changes;
}

/** MongoDB's check: one round trip of our list's query, as many documents as the page has keys. */
function mongoCheck(mongo: NonNullable<BareHttpOptions["mongo"]>, page: Buffer): () => Promise<boolean> {
  const keys = (JSON.parse(page.toString()) as { data: unknown[] }).data.length;
  const client = new MongoClient(mongo.uri, { ...mongoClientOptions(), appName: "zpk-bench-bare" });
  const db = client.db(mongo.db);
  // A list without page_size asks for one more than the default page, to know whether one follows.
  const limit = LIMITS.pageSizeDefault + 1;
  return async () => {
    const query = { customerId: mongo.customerId, instanceId: null, includeInactive: false, now: Date.now(), beforeId: null, limit };
    const reply = await db.command(listKeysCommand("api_keys", query));
    return (reply.cursor.firstBatch as unknown[]).length === keys;
  };
}
