import * as net from "node:net";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDbName, mongoServer, mongoUri } from "../helpers/mongo.js";
import { uuid } from "../helpers/rest.js";
import { SECRET_PATTERN } from "../helpers/rest-support.js";
import { grpcJsClient, type RpcClient, type RpcResult, type MethodName } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";
import { bucketStoreSteps } from "../helpers/metrics.js";
import { keysCli as runKeysCli } from "../helpers/run-process.js";

/**
 * What only the MongoDB store has (SPEC §6, §8), on the suite's FerretDB (or a real MongoDB with
 * TEST_MONGODB_URI): concurrent charges batched into far fewer store steps than charges (on
 * SQLite a step is a local transaction, and nothing is measured), and what the documents hold.
 * Every behaviour both stores share is in store-behaviours.ts, run on each by stores.test.ts.
 */
const DB = freshDbName("zpk_svc");
let server: RunningServer;
let grpc: RpcClient;

beforeAll(async () => {
  server = await startServer({ MONGODB_URI: mongoUri(), MONGODB_DB: DB, RATE_LIMIT_REFILL_PER_SEC: "0.01" });
  grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
}, 60_000);
afterAll(async () => {
  grpc?.close();
  await server?.stop();
});

const internal = () => ({ authorization: `Bearer ${server.internalToken}` });

function ok<M extends MethodName>(r: RpcResult<M>, what = ""): Extract<RpcResult<M>, { ok: true }>["res"] {
  if (!r.ok) throw new Error(`${what} expected success, got code ${r.code}: ${r.message}`);
  return r.res;
}

describe(`MongoDB store only (${mongoServer()})`, () => {
  it("ChargeRateLimit: a burst of 200 concurrent charges for one customer admits exactly the 60 tokens, answers every call, and takes far fewer store steps than charges", async () => {
    const customerId = uuid();
    const steps = () => bucketStoreSteps([server.metricsPort]);
    const before = await steps();
    const results = await Promise.all(Array.from({ length: 200 }, () => grpc.call("chargeRateLimit", { customerId }, internal())));
    const decisions = results.map((r, i) => ok(r, `charge ${i + 1}`));
    const taken = (await steps()) - before;
    // eslint-disable-next-line no-console
    console.log(`[mongo-only] 200 concurrent charges: ${decisions.filter((d) => d.allowed).length} admitted in ${taken} store steps`);
    expect(decisions.filter((d) => d.allowed)).toHaveLength(60);
    // the remaining counts of the admitted ones are 59..0, each once: no token was spent twice
    expect(decisions.filter((d) => d.allowed).map((d) => d.remaining).sort((a, b) => b - a)).toEqual(Array.from({ length: 60 }, (_, i) => 59 - i));
    for (const d of decisions.filter((d) => !d.allowed)) expect(d.retryAfterSeconds).toBeGreaterThan(0);
    // charges that queue behind a store step share the next one; one step each would be 200
    expect(taken, "store steps for 200 concurrent charges").toBeLessThan(50);
  });

  it("`npm run keys -- issue` with MONGODB_URI writes the key document (digest only) and its event to the server's database", async () => {
    const customerId = uuid();
    const r = await runKeysCli(["issue", "--customer", customerId, "--name", "from-cli"], { MONGODB_URI: mongoUri(), MONGODB_DB: DB });
    expect(r.code, r.stderr).toBe(0);
    const key = JSON.parse(r.stdout);
    expect(key.secret).toMatch(SECRET_PATTERN);
    const client = new MongoClient(mongoUri(), { serverSelectionTimeoutMS: 5000 });
    try {
      const doc = await client.db(DB).collection("api_keys").findOne({ _id: key.id as never });
      expect(doc, "the CLI's key is not in the api_keys collection").not.toBeNull();
      expect(doc!.customer_id).toBe(customerId);
      expect(JSON.stringify(doc)).not.toContain(key.secret);
      const event = await client.db(DB).collection("audit_events").findOne({ customer_id: customerId, action: "api_key.issued" });
      expect(event, "the CLI's api_key.issued event is not in audit_events").not.toBeNull();
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe(`shutdown on MongoDB (${mongoServer()})`, () => {
  it("SIGTERM while issue requests whose clients already hung up are still writing: each finishes before the store closes (no storage failure logged), every key written has its api_key.issued event, exit 0", async () => {
    const db = freshDbName("zpk_drain");
    const s = await startServer({ MONGODB_URI: mongoUri(), MONGODB_DB: db });
    const customerId = uuid();
    try {
      const body = JSON.stringify({ customer_id: customerId, name: "cut-short" });
      const request =
        `POST /v1/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${s.internalToken}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      // 40 complete requests whose clients leave at once (as a load tool does at the end of its run).
      await Promise.all(
        Array.from({ length: 40 }, () => new Promise<void>((resolve) => {
          const socket = net.connect(s.port, "127.0.0.1", () => {
            socket.write(request, () => {
              socket.destroy();
              resolve();
            });
          });
          socket.on("error", () => resolve());
        })),
      );
      await sleep(20);
      expect(await s.stop()).toBe(0);
      expect(s.output()).not.toContain("storage failure");
      // The race this is about: some issue calls were still running when SIGTERM came.
      const afterSignal = s.output().split("shutting down")[1] ?? "";
      expect(afterSignal, "no issue call was still running at SIGTERM: the test proves nothing").toMatch(/"rpc":"IssueKey"[^\n]*"code":"ok"/);
      const client = new MongoClient(mongoUri(), { serverSelectionTimeoutMS: 5000 });
      try {
        const keys = await client.db(db).collection("api_keys").find({ customer_id: customerId }).toArray();
        const events = await client.db(db).collection("audit_events").find({ customer_id: customerId, action: "api_key.issued" }).toArray();
        expect(keys.length, "no request reached the store: the test proves nothing").toBeGreaterThan(0);
        expect(new Set(events.map((e) => e.target_id))).toEqual(new Set(keys.map((k) => k._id)));
      } finally {
        await client.db(db).dropDatabase().catch(() => {});
        await client.close();
      }
    } finally {
      await s.kill();
    }
  }, 60_000);
});
