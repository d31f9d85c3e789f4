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
 *   data_version` and `SELECT total_changes()`, what src/storage/sqlite/list-cache.ts runs per
 *   request, on a WAL file of its own), and answers the real server's page with a fresh request id
 *   and the rate-limit headers; an unknown key gets 401 (and a changed file, which nothing makes, 503). No rate-limit charge, usage count, audit,
 *   metrics, query parameters or paging: a floor for GET /v1/api-keys on the same transport (no
 *   target; bench/README.md).
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import Database from "better-sqlite3";
import { digestKey } from "../../src/domain/key-format.js";
import { bearerToken } from "../../src/service/credentials.js";

export interface BareHttpOptions {
  port: number;
  /** The one key the minimal list knows, by its digest (digestKey), and the page it answers. */
  keyDigest: string;
  page: Buffer;
  /** A directory for the minimal list's SQLite file. */
  dir: string;
}

const HEALTH = Buffer.from(JSON.stringify({ status: "ok" }));

export function listenBareHttp(opts: BareHttpOptions, ready: () => void): void {
  const db = new Database(join(opts.dir, `bare-${process.pid}.sqlite`));
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY)");
  const dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
  const totalChanges = db.prepare<[], number>("SELECT total_changes()").pluck();
  const known = new Map([[opts.keyDigest, opts.page]]);
  const read = { version: dataVersion.get()!, changes: totalChanges.get()! };
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
    // Nothing writes the file: a change would be a fault of the bench, shown as non-2xx answers.
    if (dataVersion.get() !== read.version || totalChanges.get() !== read.changes) {
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
  });
  server.listen(opts.port, "127.0.0.1", ready);
}
