import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { checkLargeBucket } from "../helpers/large-bucket.js";
import { freshDbName, mongoServer, mongoUri } from "../helpers/mongo.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Several replicas on one database (issue 5, SPEC §5, §6): three real server processes with the
 * same MONGODB_URI + MONGODB_DB on different ports.
 *
 * - Shared rate limit: ~90 concurrent charges for one customer spread over all replicas (native
 *   gRPC ChargeRateLimit, then REST requests with one customer key) admit at least `capacity`
 *   (nothing lost) and at most `capacity + ceil(elapsed × rate)`, elapsed measured by the client
 *   from the first send to the last answer (an upper bound of the bucket's own elapsed time).
 *   Every charge is answered within the client's 10 s deadline: a replica charges the requests
 *   that queued behind a store step together in its next one (src/domain/rate-limit/bucket-steps.ts), so a burst
 *   costs a few compare-and-set rounds per replica, not one each.
 * - A large bucket (capacity 10,000) charged through each replica's reserves: the same one-sided
 *   bound as with WORKERS (test/helpers/large-bucket.ts), the compare-and-set taking the reserves.
 * - Revocation and expiry bound: once a key is warm on every replica, a revocation on A is seen by
 *   A at once and by B and C within 1 s (+100 ms slack for the 50 ms poll and the round trip); an
 *   expiry (set at issue, or moved near by a PATCH on A) is seen by every replica within 1 s of
 *   the expiry time. The observed delays are printed.
 * - Writes to one key document from several replicas at once (single-document atomicity is the
 *   only guarantee the store may rely on): usage counters flushed concurrently by every replica
 *   add up exactly, and a revocation made while other replicas keep using the key (and flushing
 *   its usage) holds — DELETE 204 means revoked, for good.
 *
 * Replicas run with USAGE_FLUSH_INTERVAL_MS = 200 (production default 1000): frequent enough that
 * the replicas' flushes meet each other and the revocations; the helper's 100 ms makes three
 * replicas saturate FerretDB's SQLite backend under the load used here.
 */
const CAPACITY = 20;
const RATE = 1;
const BOUND_MS = 1000;
const SLACK_MS = 100;
const POLL_MS = 50;
const USAGE_FLUSH_MS = 200;

let replicas: RunningServer[] = [];
let grpc: RpcClient[] = [];
let internal: Record<string, string>;
const NAMES = ["A", "B", "C"];

beforeAll(async () => {
  const env = {
    MONGODB_URI: mongoUri(),
    MONGODB_DB: freshDbName("zpk_replicas"),
    RATE_LIMIT_CAPACITY: String(CAPACITY),
    RATE_LIMIT_REFILL_PER_SEC: String(RATE),
    // frequent flushes (the production default is 1000 ms), yet not the helper's 100 ms, which with
    // three replicas saturates FerretDB's SQLite backend under the load used below
    USAGE_FLUSH_INTERVAL_MS: String(USAGE_FLUSH_MS),
  };
  const started = await Promise.allSettled(NAMES.map(() => startServer(env)));
  replicas = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = started.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  grpc = replicas.map((r, i) => grpcJsClient(`127.0.0.1:${r.grpcPort}`, `grpc-js -> ${NAMES[i]}`));
  internal = { authorization: `Bearer ${replicas[0]!.internalToken}` };
  log(`${replicas.length} replicas on ${mongoServer()} db ${env.MONGODB_DB}: ${replicas.map((r) => `${r.port}/${r.grpcPort}`).join(", ")}`);
}, 90_000);
afterAll(async () => {
  for (const c of grpc) c.close();
  await Promise.all(replicas.map((r) => r.stop()));
});

// eslint-disable-next-line no-console
const log = (msg: string) => console.log(`[replicas] ${msg}`);

async function authenticate(i: number, key: string) {
  const r = await grpc[i]!.call("authenticate", { key }, internal);
  if (!r.ok) throw new Error(`Authenticate on ${NAMES[i]} failed with code ${r.code}: ${r.message}`);
  return r.res;
}
const reasonOf = (res: { valid: boolean; denialReason: DenialReason }) => (res.valid ? "VALID" : DenialReason[res.denialReason]);

/**
 * Polls Authenticate on replica `i` every POLL_MS until it answers `want`; returns the wall-clock
 * time of that answer, and every answer seen (with its time) for the report.
 */
async function pollUntil(i: number, key: string, want: string, giveUpAt: number) {
  const seen: { at: number; reason: string }[] = [];
  for (;;) {
    const started = Date.now();
    const reason = reasonOf(await authenticate(i, key));
    const at = Date.now();
    seen.push({ at, reason });
    if (reason === want) return { at, seen };
    if (at > giveUpAt) return { at: null, seen };
    await sleep(Math.max(0, POLL_MS - (at - started)));
  }
}

describe("shared rate limit across replicas", () => {
  it(`ChargeRateLimit: 90 concurrent charges per customer over ${NAMES.length} replicas (3 customers at once) admit >= capacity and <= capacity + ceil(elapsed x rate)`, async () => {
    async function burst(customerId: string) {
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: 90 }, (_, n) => grpc[n % replicas.length]!.call("chargeRateLimit", { customerId }, internal).then((r) => ({ r, replica: n % replicas.length }))),
      );
      return { results, elapsedS: (performance.now() - t0) / 1000 };
    }
    const bursts = await Promise.all([uuid(), uuid(), uuid()].map(burst));
    for (const [c, { results, elapsedS }] of bursts.entries()) {
      const errors = results.filter(({ r }) => !r.ok).map(({ r }) => (r.ok ? "" : `${r.code}: ${r.message}`));
      const admittedBy = NAMES.map((_, i) => results.filter(({ r, replica }) => replica === i && r.ok && r.res.allowed).length);
      const admitted = admittedBy.reduce((a, b) => a + b, 0);
      const bound = CAPACITY + Math.ceil(elapsedS * RATE);
      log(`ChargeRateLimit x90, customer ${c + 1}: admitted ${admitted} (per replica ${admittedBy.join("/")}), refused ${90 - admitted - errors.length}, errors ${errors.length}; elapsed ${elapsedS.toFixed(2)} s; bound ${bound}`);
      expect.soft(errors, `customer ${c + 1}: charges that failed instead of answering allowed/refused`).toEqual([]);
      expect.soft(admitted, `customer ${c + 1}: admitted more than capacity + ceil(elapsed x rate) = ${bound}`).toBeLessThanOrEqual(bound);
      expect.soft(admitted, `customer ${c + 1}: tokens were lost: fewer than the capacity admitted`).toBeGreaterThanOrEqual(CAPACITY);
      for (const { r } of results) {
        if (!r.ok) continue;
        expect(r.res.limit).toBe(CAPACITY);
        if (!r.res.allowed) expect(r.res.retryAfterSeconds).toBeGreaterThan(0);
      }
      // Which replica admitted how many is timing: each charges the burst it queued in a few store
      // steps, and the first step to land may take every token. Three buckets instead of one shared
      // would admit 3 x capacity, far above the bound.
    }
  }, 60_000);

  it("REST: a customer key used concurrently on every replica (2 customers at once) gets at most capacity + ceil(elapsed x rate) 2xx, the rest 429", async () => {
    async function burst(customerId: string) {
      const key = await issueAsInternal(replicas[0]!, customerId, { name: "hammered" }); // internal calls charge nothing
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: 90 }, (_, n) =>
          rest(replicas[n % replicas.length]!, "GET", "/v1/api-keys", { key: key.secret }).then((res) => ({ res, replica: n % replicas.length })),
        ),
      );
      return { results, elapsedS: (performance.now() - t0) / 1000 };
    }
    const bursts = await Promise.all([uuid(), uuid()].map(burst));
    for (const [c, { results, elapsedS }] of bursts.entries()) {
      const statuses = new Map<number, number>();
      for (const { res } of results) statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const ok = results.filter(({ res }) => res.status >= 200 && res.status < 300);
      const limited = results.filter(({ res }) => res.status === 429);
      const bound = CAPACITY + Math.ceil(elapsedS * RATE);
      const okBy = NAMES.map((_, i) => ok.filter((r) => r.replica === i).length);
      log(`REST x90, customer ${c + 1}: 2xx ${ok.length} (per replica ${okBy.join("/")}), 429 ${limited.length}, statuses ${JSON.stringify(Object.fromEntries(statuses))}; elapsed ${elapsedS.toFixed(2)} s; bound ${bound}`);
      expect.soft(ok.length + limited.length, `customer ${c + 1}: other statuses: ${JSON.stringify(Object.fromEntries(statuses))}`).toBe(90);
      expect.soft(ok.length, `customer ${c + 1}: more than capacity + ceil(elapsed x rate) = ${bound} succeeded`).toBeLessThanOrEqual(bound);
      expect.soft(ok.length, `customer ${c + 1}: tokens were lost`).toBeGreaterThanOrEqual(CAPACITY);
      for (const { res } of limited) {
        expect(res.body.error.code).toBe("rate_limited");
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
        expect(res.headers.get("x-ratelimit-remaining")).toBe("0");
      }
    }
  }, 60_000);
});

describe("a large bucket across replicas (per-process reserves)", () => {
  it("never admits more than capacity + elapsed x rate, refuses at most replicas x 1.5 reserves early, and gives unused reserves back", async () => {
    await checkLargeBucket(grpc, internal, replicas.length, replicas.map((r) => r.metricsPort));
  }, 90_000); // 10 550 RPCs over 3 replicas: slow under load
});

describe("writes to one key from several replicas at once", () => {
  it("usage counters: 300 authentications spread over every replica add up to total_requests 300 (write-behind $inc loses nothing)", async () => {
    const customerId = uuid();
    const key = await issueAsInternal(replicas[0]!, customerId, { name: "counted" });
    const N = 300;
    const results = await Promise.all(Array.from({ length: N }, (_, n) => authenticate(n % replicas.length, key.secret)));
    expect(results.filter((r) => r.valid)).toHaveLength(N);
    await sleep(USAGE_FLUSH_MS + 500);
    const got = await rest(replicas[0]!, "GET", `/v1/api-keys/${key.id}?customer_id=${customerId}`, { key: replicas[0]!.internalToken });
    log(`usage from ${N} authentications over ${replicas.length} replicas: total_requests ${got.body.total_requests}`);
    expect(got.body.total_requests, "usage increments from concurrent flushes were lost").toBe(N);
  }, 30_000);

  it("revocations made while other replicas keep using (and flushing usage for) the same keys are never lost", async () => {
    const customerId = uuid();
    const keys = await Promise.all(Array.from({ length: 9 }, (_, n) => issueAsInternal(replicas[n % replicas.length]!, customerId, { name: `busy-${n}` })));
    let stop = false;
    // every replica keeps using every key (so each has usage pending and flushes it every 100 ms)
    const load = replicas.map(async (_, i) => {
      while (!stop) {
        await Promise.all(keys.map((k) => authenticate(i, k.secret)));
        await sleep(100);
      }
    });
    const statuses: number[] = [];
    const deleteMs: number[] = [];
    try {
      await sleep(300);
      for (const [n, k] of keys.entries()) {
        const r = replicas[n % replicas.length]!;
        await sleep(Math.random() * 150); // revocations fall at random points of the replicas' flush cycles
        const t = performance.now();
        const del = await rest(r, "DELETE", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: r.internalToken });
        deleteMs.push(Math.round(performance.now() - t));
        statuses.push(del.status);
        await sleep(40);
      }
    } finally {
      stop = true;
      await Promise.all(load);
    }
    expect(statuses, "DELETE answers").toEqual(keys.map(() => 204));
    await sleep(Math.max(BOUND_MS, USAGE_FLUSH_MS) + 500); // every replica's revocation bound, and the last usage flushes
    const lost: string[] = [];
    for (const k of keys) {
      const got = await rest(replicas[0]!, "GET", `/v1/api-keys/${k.id}?customer_id=${customerId}`, { key: replicas[0]!.internalToken });
      const answers = await Promise.all([...replicas.keys()].map(async (i) => reasonOf(await authenticate(i, k.secret))));
      if (got.body.revoked_at === null || answers.some((a) => a !== "REVOKED")) lost.push(`${k.name}: revoked_at ${got.body.revoked_at}, Authenticate ${answers.join("/")}`);
    }
    log(`revocations under concurrent use (DELETE took ${deleteMs.join("/")} ms): ${keys.length - lost.length} of ${keys.length} held${lost.length ? `; lost: ${lost.join("; ")}` : ""}`);
    expect(lost, "revocations answered 204 that did not hold").toEqual([]);
  }, 30_000);
});

describe("revocation and expiry across replicas", () => {
  it(`a revocation on A is seen by A at once and by B and C within ${BOUND_MS} ms`, async () => {
    const customerId = uuid();
    const key = await issueAsInternal(replicas[0]!, customerId, { name: "to-revoke" });
    // warm: the key is known (and any cache filled) on every replica
    for (let round = 0; round < 3; round++) {
      for (const i of replicas.keys()) expect(reasonOf(await authenticate(i, key.secret)), `${NAMES[i]} warm-up`).toBe("VALID");
    }
    const del = await rest(replicas[0]!, "DELETE", `/v1/api-keys/${key.id}?customer_id=${customerId}`, { key: replicas[0]!.internalToken });
    expect(del.status).toBe(204);
    const revokedAt = Date.now();
    const stored = await rest(replicas[0]!, "GET", `/v1/api-keys/${key.id}?customer_id=${customerId}`, { key: replicas[0]!.internalToken });
    expect.soft(stored.body.revoked_at, "DELETE answered 204 but the stored key has revoked_at null (the revocation was lost)").not.toBeNull();
    expect(reasonOf(await authenticate(0, key.secret)), "the revoking replica still accepts the key").toBe("REVOKED");
    const delayA = Date.now() - revokedAt;

    const others = await Promise.all([...replicas.keys()].slice(1).map((i) => pollUntil(i, key.secret, "REVOKED", revokedAt + 3000)));
    const delays = others.map((o) => (o.at === null ? null : o.at - revokedAt));
    log(`revocation on A seen by A after ${delayA} ms, by ${others.map((_, j) => `${NAMES[j + 1]} after ${delays[j] ?? "never (3 s)"} ms (${others[j]!.seen.length} polls)`).join(", ")}`);
    for (const [j, d] of delays.entries()) {
      expect(d, `replica ${NAMES[j + 1]} never saw the revocation`).not.toBeNull();
      expect(d!, `replica ${NAMES[j + 1]} saw the revocation after ${d} ms`).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
      // once revoked, it stays revoked
      expect(others[j]!.seen.slice(others[j]!.seen.findIndex((s) => s.reason === "REVOKED")).every((s) => s.reason === "REVOKED")).toBe(true);
    }
    for (const i of replicas.keys()) {
      const res = await rest(replicas[i]!, "GET", "/v1/api-keys", { key: key.secret });
      expect(res.status, `REST on ${NAMES[i]}`).toBe(401);
    }
  }, 30_000);

  async function expectExpiryEverywhere(secret: string, expiresAt: number, what: string) {
    const polls = await Promise.all([...replicas.keys()].map((i) => pollUntil(i, secret, "EXPIRED", expiresAt + 3000)));
    const delays = polls.map((p) => (p.at === null ? null : p.at - expiresAt));
    log(`${what}: EXPIRED seen ${polls.map((p, i) => `on ${NAMES[i]} ${delays[i] ?? "never (3 s)"} ms after expires_at (${p.seen.length} polls)`).join(", ")}`);
    for (const [i, p] of polls.entries()) {
      expect(delays[i], `replica ${NAMES[i]} never denied the expired key`).not.toBeNull();
      expect(delays[i]!, `replica ${NAMES[i]} denied EXPIRED only ${delays[i]} ms after expires_at`).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
      // no answer other than VALID (before) or EXPIRED (after); never EXPIRED before the time
      for (const s of p.seen) {
        expect(["VALID", "EXPIRED"], `${NAMES[i]} answered ${s.reason}`).toContain(s.reason);
      }
      const firstExpired = p.seen.find((s) => s.reason === "EXPIRED")!;
      expect(firstExpired.at, `${NAMES[i]} said EXPIRED before expires_at`).toBeGreaterThanOrEqual(expiresAt);
      expect(p.seen.slice(p.seen.indexOf(firstExpired)).every((s) => s.reason === "EXPIRED")).toBe(true);
    }
  }

  it(`a key issued with expires_at 1.5 s ahead is denied EXPIRED by every replica within ${BOUND_MS} ms of that time`, async () => {
    const customerId = uuid();
    const key = await issueAsInternal(replicas[0]!, customerId, { name: "short-lived", expires_at: new Date(Date.now() + 1500).toISOString() });
    const expiresAt = Date.parse(key.expires_at as string);
    for (const i of replicas.keys()) expect(reasonOf(await authenticate(i, key.secret)), `${NAMES[i]} before expiry`).toBe("VALID");
    await expectExpiryEverywhere(key.secret, expiresAt, "expires_at set at issue");
  }, 30_000);

  it(`an expires_at moved near by a PATCH on A is enforced by every replica within ${BOUND_MS} ms of that time`, async () => {
    const customerId = uuid();
    const root = await issueAsInternal(replicas[0]!, customerId, { name: "root" });
    const key = await issueAsInternal(replicas[0]!, customerId, { name: "patched" });
    for (let round = 0; round < 2; round++) {
      for (const i of replicas.keys()) expect(reasonOf(await authenticate(i, key.secret)), `${NAMES[i]} warm-up`).toBe("VALID");
    }
    const wanted = new Date(Date.now() + 800).toISOString();
    const patched = await rest(replicas[0]!, "PATCH", `/v1/api-keys/${key.id}`, { key: root.secret, body: { expires_at: wanted } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const expiresAt = Date.parse(patched.body.expires_at);
    expect(expiresAt).toBe(Date.parse(wanted));
    try {
      await expectExpiryEverywhere(key.secret, expiresAt, "expires_at moved by PATCH on A");
    } finally {
      const stored = await rest(replicas[0]!, "GET", `/v1/api-keys/${key.id}?customer_id=${customerId}`, { key: replicas[0]!.internalToken });
      expect.soft(stored.body.expires_at, "PATCH answered 200, but the stored expires_at is not what it set (the update was lost)").toBe(patched.body.expires_at);
    }
  }, 30_000);
});
