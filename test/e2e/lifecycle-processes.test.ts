import * as net from "node:net";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { passesWithin } from "../helpers/lifecycle-api.js";
import { freshDbName, mongoUri } from "../helpers/mongo.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer, tempDir } from "../helpers/server.js";

/**
 * Issue 13 across real processes, on both stores (the embedded SQLite file shared by two
 * processes, and FerretDB shared by two replicas):
 *
 * - disable and enable made on A reach B within the SPEC §5 bound (1 s; +150 ms for the poll's
 *   round trip on a loaded machine), both directions;
 * - a successor's first use on B starts the predecessor's grace on A (grace_starts first_use);
 * - kill -9 while batches of 100 are being written leaves each batch all there or all absent;
 * - kill -9 between a write and its response: the retry with the same Idempotency-Key returns the
 *   stored answer (the same key and the same, working secret), never a second key.
 */
const BOUND_MS = 1000 + 150;

type StoreEnv = { name: string; env: () => Record<string, string>; rawPending?: (db: string) => Promise<number> };

const STORES: StoreEnv[] = [
  { name: "sqlite", env: () => ({ DATA_DIR: tempDir() }) },
  {
    name: "ferretdb",
    env: () => ({ MONGODB_URI: mongoUri(), MONGODB_DB: freshDbName("zpk_lc") }),
  },
];

// The kill -9 loops issue thousands of keys for one customer in a few seconds: above the default
// active-key cap (1000), which these tests are not about.
const COMMON = {
  RATE_LIMIT_CAPACITY: "1000000",
  RATE_LIMIT_REFILL_PER_SEC: "1000",
  REVOCATION_POLL_MS: "500",
  IDEMPOTENCY_LEASE_MS: "1000",
  MAX_ACTIVE_KEYS_PER_CUSTOMER: "1000000",
};

describe.each(STORES)("on $name", (store) => {
  let env: Record<string, string>;
  let a: RunningServer;
  let b: RunningServer;
  let grpcA: RpcClient;
  let grpcB: RpcClient;
  const running: RunningServer[] = [];

  const start = async () => {
    const s = await startServer({ ...COMMON, ...env });
    running.push(s);
    return s;
  };

  beforeAll(async () => {
    env = store.env();
    a = await start();
    b = await start();
    grpcA = grpcJsClient(`127.0.0.1:${a.grpcPort}`);
    grpcB = grpcJsClient(`127.0.0.1:${b.grpcPort}`);
  }, 90_000);
  afterAll(async () => {
    grpcA?.close();
    grpcB?.close();
    for (const s of running) await s.stop();
  });

  async function auth(client: RpcClient, key: string): Promise<DenialReason> {
    const r = await client.call("authenticate", { key }, { authorization: `Bearer ${a.internalToken}` });
    if (!r.ok) throw new Error(`Authenticate: ${r.code} ${r.message}`);
    return r.res.denialReason;
  }

  it(`disable on A is enforced by B within ${BOUND_MS} ms, and so is enable`, async () => {
    const customer = uuid();
    const k = await issueAsInternal(a, customer);
    expect(await auth(grpcB, k.secret)).toBe(DenialReason.UNSPECIFIED); // B caches the key
    const off = await rest(a, "PATCH", `/v1/api-keys/${k.id}`, { key: a.internalToken, body: { customer_id: customer, enabled: false } });
    expect(off.status).toBe(200);
    expect(await auth(grpcA, k.secret), "A: at once").toBe(DenialReason.DISABLED);
    const tookOff = await passesWithin(async () => expect(await auth(grpcB, k.secret)).toBe(DenialReason.DISABLED), BOUND_MS, 20);
    const on = await rest(a, "PATCH", `/v1/api-keys/${k.id}`, { key: a.internalToken, body: { customer_id: customer, enabled: true } });
    expect(on.status).toBe(200);
    expect(await auth(grpcA, k.secret)).toBe(DenialReason.UNSPECIFIED);
    const tookOn = await passesWithin(async () => expect(await auth(grpcB, k.secret)).toBe(DenialReason.UNSPECIFIED), BOUND_MS, 20);
    console.log(`[lifecycle ${store.name}] disable reached B in ${tookOff} ms, enable in ${tookOn} ms`);
  });

  it("first use of the successor on B starts the predecessor's grace on A (grace_starts first_use)", async () => {
    const customer = uuid();
    const k = await issueAsInternal(a, customer);
    expect(await auth(grpcA, k.secret)).toBe(DenialReason.UNSPECIFIED); // A caches the old key
    const roll = await rest(a, "POST", `/v1/api-keys/${k.id}/roll`, {
      key: a.internalToken,
      body: { customer_id: customer, grace_seconds: 1, grace_starts: "first_use" },
    });
    expect(roll.status).toBe(201);
    await sleep(1300);
    expect(await auth(grpcA, k.secret), "before the first use the old key keeps working").toBe(DenialReason.UNSPECIFIED);
    const firstUse = Date.now();
    expect(await auth(grpcB, roll.body.secret)).toBe(DenialReason.UNSPECIFIED);
    // Grace 1 s from the first use on B, seen by A within the bound.
    await passesWithin(async () => expect(await auth(grpcA, k.secret)).toBe(DenialReason.EXPIRED), 1000 + BOUND_MS + 500, 50);
    expect(Date.now() - firstUse, "not before the grace").toBeGreaterThanOrEqual(900);
    expect(await auth(grpcA, roll.body.secret)).toBe(DenialReason.UNSPECIFIED);
  });

  it("kill -9 while batches of 100 are written: each batch is all there or all absent after a restart", async () => {
    const victim = await start();
    const customer = uuid();
    const sent: string[] = [];
    const answered = new Map<string, string[]>(); // batch tag -> secrets of a 201
    let stop = false;
    async function worker(n: number) {
      for (let i = 0; !stop; i++) {
        const tag = `w${n}-${i}`;
        sent.push(tag);
        const res = await rest(victim, "POST", "/v1/api-keys:batchIssue", {
          key: victim.internalToken,
          body: { customer_id: customer, keys: Array.from({ length: 100 }, (_, j) => ({ name: `${tag}-${j}`, metadata: { batch: tag } })) },
        }).catch(() => null);
        if (res?.status === 201) answered.set(tag, res.body.data.map((k: { secret: string }) => k.secret));
      }
    }
    const loops = [worker(0), worker(1)];
    // Kill once a batch has been acknowledged, while the next ones are in flight.
    await passesWithin(async () => expect(answered.size).toBeGreaterThan(0), 30_000, 10);
    await sleep(Math.random() * (store.name === "sqlite" ? 50 : 300));
    await victim.kill();
    stop = true;
    await Promise.all(loops);
    let pendingAtKill = 0;
    if (store.name === "ferretdb") {
      const c = new MongoClient(mongoUri());
      pendingAtKill = await c.db(env.MONGODB_DB!).collection("api_keys").countDocuments({ pending_write: { $ne: null } });
      await c.close();
    }
    const after = await start(); // a restart on the same store (recovery runs at start)
    const counts: number[] = [];
    for (const tag of sent) {
      const res = await rest(after, "GET", `/v1/api-keys?customer_id=${customer}&metadata.batch=${tag}&page_size=1`, { key: after.internalToken });
      expect(res.status).toBe(200);
      counts.push(res.body.total_size);
      expect([0, 100], `batch ${tag}`).toContain(res.body.total_size);
      if (answered.has(tag)) expect(res.body.total_size, `acknowledged batch ${tag}`).toBe(100);
    }
    const complete = counts.filter((n) => n === 100).length;
    console.log(`[lifecycle ${store.name}] batches sent ${sent.length}, acknowledged ${answered.size}, complete after restart ${complete}, ` +
      `key documents of unfinished writes at the kill ${pendingAtKill}`);
    expect(answered.size).toBeGreaterThan(0);
    expect(sent.length, "a batch was in flight at the kill").toBeGreaterThan(answered.size);
    // Every secret of an acknowledged batch authenticates after the restart.
    const [tag, secrets] = [...answered][0]!;
    const grpc = grpcJsClient(`127.0.0.1:${after.grpcPort}`);
    for (const s of secrets!.slice(0, 5)) expect(await auth(grpc, s), tag).toBe(DenialReason.UNSPECIFIED);
    grpc.close();
    await after.stop();
  }, 120_000);

  it("kill -9 between write and response: the retry with the same Idempotency-Key returns the stored key and secret, no second key", async () => {
    const customer = uuid();
    let exercised = 0;
    let retried = 0;
    for (let round = 0; round < 4 && exercised === 0; round++) {
      const victim = await start();
      const lost: { idem: string; name: string }[] = [];
      let stop = false;
      async function worker(n: number) {
        for (let i = 0; !stop; i++) {
          const req = { idem: `r${round}-w${n}-${i}-${uuid()}`, name: `r${round}-w${n}-${i}` };
          const res = await rest(victim, "POST", "/v1/api-keys", {
            key: victim.internalToken,
            headers: { "idempotency-key": req.idem },
            body: { customer_id: customer, name: req.name },
          }).catch(() => null);
          if (res?.status !== 201) lost.push(req);
        }
      }
      const loops = [worker(0), worker(1), worker(2), worker(3)];
      await sleep(800 + Math.random() * 400);
      await victim.kill();
      stop = true;
      await Promise.all(loops);
      await sleep(1100); // the dead call's lease (IDEMPOTENCY_LEASE_MS=1000) runs out
      const list = await rest(b, "GET", `/v1/api-keys?customer_id=${customer}&page_size=100&include_inactive=true`, { key: b.internalToken });
      const byName = new Map<string, string>(list.body.data.map((k: { name: string; id: string }) => [k.name, k.id]));
      for (const req of lost) {
        const written = byName.get(req.name);
        const res = await rest(b, "POST", "/v1/api-keys", {
          key: b.internalToken,
          headers: { "idempotency-key": req.idem },
          body: { customer_id: customer, name: req.name },
        });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        retried++;
        if (written) {
          exercised++;
          expect(res.body.id, "the retry answers with the key that was written").toBe(written);
        }
        const principal = await grpcB.call("authenticate", { key: res.body.secret }, { authorization: `Bearer ${b.internalToken}` });
        expect(principal.ok && principal.res.valid && principal.res.principal?.keyId).toBe(res.body.id);
      }
      const again = await rest(b, "GET", `/v1/api-keys?customer_id=${customer}&page_size=100&include_inactive=true`, { key: b.internalToken });
      const names = again.body.data.map((k: { name: string }) => k.name);
      expect(new Set(names).size, "one key per request, never a second one").toBe(names.length);
    }
    console.log(`[lifecycle ${store.name}] lost answers retried ${retried}; of them written before the kill ${exercised}`);
  }, 120_000);

  it("kill -9 with the answer held back (written, never delivered): the retry gets the stored key and a secret that works", async () => {
    const victim = await start();
    const customer = uuid();
    // A loopback proxy that passes the request on and keeps the server's answer from the client.
    let answered!: () => void;
    const gotAnswer = new Promise<void>((r) => (answered = r));
    const clients: net.Socket[] = [];
    const proxy = net.createServer((c) => {
      clients.push(c);
      const upstream = net.connect(victim.port, "127.0.0.1");
      c.pipe(upstream);
      upstream.on("data", () => answered());
      upstream.on("error", () => c.destroy());
      c.on("error", () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const via = { url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}` };
    const idem = `held-${uuid()}`;
    const body = { customer_id: customer, name: "held" };
    const first = rest(via, "POST", "/v1/api-keys", { key: victim.internalToken, headers: { "idempotency-key": idem }, body }).then(
      () => "delivered",
      () => "lost",
    );
    await gotAnswer;
    await victim.kill();
    for (const c of clients) c.destroy();
    expect(await first).toBe("lost");
    proxy.close();
    await sleep(1100); // lease
    const list = await rest(b, "GET", `/v1/api-keys?customer_id=${customer}`, { key: b.internalToken });
    expect(list.body.total_size, "the write happened").toBe(1);
    const retry = await rest(b, "POST", "/v1/api-keys", { key: b.internalToken, headers: { "idempotency-key": idem }, body });
    expect(retry.status).toBe(201);
    expect(retry.body.id).toBe(list.body.data[0].id);
    expect(await auth(grpcB, retry.body.secret)).toBe(DenialReason.UNSPECIFIED);
    const after = await rest(b, "GET", `/v1/api-keys?customer_id=${customer}`, { key: b.internalToken });
    expect(after.body.total_size, "no second key").toBe(1);
  });
});
