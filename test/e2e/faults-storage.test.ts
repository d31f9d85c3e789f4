import { execFileSync, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { type FerretDbProcess, startFerretDb } from "../helpers/ferretdb-process.js";
import { freePort } from "../helpers/loopback.js";
import { freshDbName } from "../helpers/mongo.js";
import { issueAsInternal, rest, type RestResponse, uuid } from "../helpers/rest.js";
import { auditTrail, expectError, wellFormedUnknownKey } from "../helpers/rest-support.js";
import { grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { INTERNAL_TOKEN, REPO, type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * Storage faults (issue 7 "Storage faults", issue 5): the real server process over a store that
 * goes away, with the documented answers — REST 503 `{"error":{"code":"unavailable",…}}`, gRPC
 * UNAVAILABLE (14) — within a bounded time, `/readyz` 503 while `/healthz` stays 200, no crash,
 * nothing half-written, and recovery without a restart.
 *
 * - MongoDB store: a FerretDB process of this file's own (never the suite's shared one) is
 *   SIGKILLed under the running server and restarted on the same port and data directory.
 * - MongoDB unreachable at start: the server exits non-zero with one clear line on stderr.
 * - Embedded store, two faults that genuinely work on this machine:
 *   1. Disk full: DATA_DIR is a small tmpfs (`mount -t tmpfs -o size=8m`), filled with a filler
 *      file until ENOSPC, so SQLite's next WAL append fails with SQLITE_FULL; deleting the filler
 *      frees it. Needs CAP_SYS_ADMIN (root here); skipped, with a note, where mount is refused.
 *      A read-only data directory cannot be made as root: permissions do not bind root, and
 *      `mount -o remount,ro` of the tmpfs fails with EBUSY while the server holds its files
 *      open for writing (verified), so "read-only" is not simulated.
 *   2. Database locked: this test process holds SQLite's write lock on the server's database
 *      (`BEGIN IMMEDIATE` through better-sqlite3, the way the `keys` CLI or another worker holds
 *      it while writing), so the server's writers get SQLITE_BUSY after busy_timeout (5 s).
 *      Works unprivileged. better-sqlite3 is synchronous: while a writer waits for the lock the
 *      server's event loop waits with it; the /healthz latency during the lock is measured and
 *      printed.
 */
const REQUEST_BOUND_MS = 10_000;
const RECOVERY_BOUND_MS = 15_000;

// eslint-disable-next-line no-console
const log = (msg: string) => console.log(`[faults-storage] ${msg}`);

const internal = { authorization: `Bearer ${INTERNAL_TOKEN}` };

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: Math.round(performance.now() - t0) };
}

async function get(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  await res.arrayBuffer();
  return res.status;
}

/** Polls fn every `everyMs` until it returns true; returns ms until then, or null at the deadline. */
async function pollMs(fn: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<number | null> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await fn().catch(() => false)) return Date.now() - t0;
    await sleep(everyMs);
  }
  return null;
}

/** The server's error-level log lines (unexpected errors and storage failures), for failure messages. */
const serverErrors = (s: RunningServer) =>
  s.output().split("\n").filter((l) => /"level":(50|60)/.test(l)).map((l) => l.slice(0, 1500)).join("\n");

const countBy = (xs: (string | number)[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

const alive = (s: RunningServer) => s.process.exitCode === null && s.process.signalCode === null;

describe("MongoDB store: the database goes away and comes back", () => {
  let fdb: FerretDbProcess;
  let server: RunningServer;
  let grpc: RpcClient;

  beforeAll(async () => {
    fdb = await startFerretDb();
    server = await startServer({ MONGODB_URI: fdb.uri, MONGODB_DB: freshDbName("zpk_fault") });
    grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
  }, 60_000);
  afterAll(async () => {
    grpc?.close();
    await server?.stop();
    await fdb?.dispose();
  });

  it("503 unavailable / UNAVAILABLE within a bounded time while it is down, /readyz 503, /healthz 200, no crash; recovers by itself with nothing lost or half-written", async () => {
    const customerId = uuid();
    const root = await issueAsInternal(server, customerId, { name: "root" });
    const child = await issueAsInternal(server, customerId, { name: "child" });
    for (let i = 0; i < 3; i++) expect((await grpc.call("authenticate", { key: child.secret }, internal)).ok).toBe(true);
    await sleep(300); // usage write-behind (100 ms here) has flushed
    const listPath = `/v1/api-keys?include_inactive=true&customer_id=${customerId}`;
    const before = (await rest(server, "GET", listPath, { key: server.internalToken })).body.data;
    expect(before.map((k: any) => k.id)).toEqual([child.id, root.id]);
    expect(await get(`${server.url}/readyz`)).toBe(200);

    // many pooled driver connections, so the outage hits connections in every state
    const warm = await Promise.all(Array.from({ length: 30 }, () => rest(server, "GET", listPath, { key: server.internalToken })));
    expect(warm.map((r) => r.status)).toEqual(warm.map(() => 200));

    await fdb.kill();
    const downAt = Date.now();

    // a burst right as it dies (requests racing the driver noticing the dead connections) ...
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        timed(() =>
          i % 3 === 0
            ? rest(server, "POST", "/v1/api-keys", { key: server.internalToken, body: { name: `burst-${i}`, customer_id: customerId } })
            : rest(server, "GET", i % 3 === 1 ? listPath : `/v1/audit-events?customer_id=${customerId}`, { key: server.internalToken }),
        ),
      ),
    );
    const burstStatuses = burst.map((b) => b.value.status);
    log(`burst of 30 as MongoDB died: statuses ${JSON.stringify(countBy(burstStatuses))}, slowest ${Math.max(...burst.map((b) => b.ms))} ms`);
    // soft, so the rest of the scenario (recovery, nothing half-written) still runs and reports
    const notUnavailable = burst.filter((b) => b.value.status !== 503 || b.value.body?.error?.code !== "unavailable");
    expect
      .soft(notUnavailable.map((b) => `${b.value.status} ${JSON.stringify(b.value.body)}`), `answers other than 503 unavailable; server errors:\n${serverErrors(server)}`)
      .toEqual([]);
    for (const b of burst) expect(b.ms).toBeLessThan(REQUEST_BOUND_MS);

    // ... then everything that needs storage, at once, each timed

    const [issue, list, audit, withKey, authUnknown, charge, authMalformed, readyz, healthz] = await Promise.all([
      timed(() => rest(server, "POST", "/v1/api-keys", { key: server.internalToken, body: { name: "during-outage", customer_id: customerId } })),
      timed(() => rest(server, "GET", listPath, { key: server.internalToken })),
      timed(() => rest(server, "GET", `/v1/audit-events?customer_id=${customerId}`, { key: server.internalToken })),
      timed(() => rest(server, "GET", "/v1/api-keys", { key: root.secret })),
      timed(() => grpc.call("authenticate", { key: wellFormedUnknownKey() }, internal)),
      timed(() => grpc.call("chargeRateLimit", { customerId }, internal)),
      timed(() => grpc.call("authenticate", { key: "zpk_live_garbage" }, internal)),
      timed(() => get(`${server.url}/readyz`)),
      timed(() => get(`${server.url}/healthz`)),
    ]);
    log(
      `MongoDB down: latency ms — issue ${issue.ms}, list ${list.ms}, audit ${audit.ms}, REST with key ${withKey.ms}, ` +
        `Authenticate ${authUnknown.ms}, ChargeRateLimit ${charge.ms}, Authenticate(malformed) ${authMalformed.ms}, /readyz ${readyz.ms}, /healthz ${healthz.ms}`,
    );
    for (const [what, r] of [["issue", issue], ["list", list], ["audit", audit], ["REST with a customer key", withKey]] as const) {
      expect(r.value.status, `${what}: ${JSON.stringify(r.value.body)}\nserver errors:\n${serverErrors(server)}`).toBe(503);
      expectError(r.value as RestResponse, 503, "unavailable");
      expect(r.ms, `${what} took ${r.ms} ms`).toBeLessThan(REQUEST_BOUND_MS);
    }
    for (const [what, r] of [["Authenticate", authUnknown], ["ChargeRateLimit", charge]] as const) {
      expect(r.value.ok ? "ok" : r.value.code, `${what}: ${JSON.stringify(r.value.ok ? "" : r.value.message)}`).toBe(14);
      expect(r.ms, `${what} took ${r.ms} ms`).toBeLessThan(REQUEST_BOUND_MS);
    }
    // a malformed key is decided without storage: still a normal denial
    expect(authMalformed.value.ok && DenialReason[authMalformed.value.res.denialReason]).toBe("MALFORMED");
    expect(readyz.value, "/readyz while MongoDB is down").toBe(503);
    expect(readyz.ms).toBeLessThan(REQUEST_BOUND_MS);
    expect(healthz.value, "/healthz while MongoDB is down").toBe(200);
    expect(healthz.ms).toBeLessThan(1000);

    // a while later it still answers (no hang, no crash), and the process is alive
    await sleep(1000);
    const later = await timed(() => rest(server, "GET", listPath, { key: server.internalToken }));
    expectError(later.value, 503, "unavailable");
    expect(later.ms).toBeLessThan(REQUEST_BOUND_MS);
    expect(alive(server), server.output().slice(-3000)).toBe(true);
    const outageMs = Date.now() - downAt;

    await fdb.start();
    const upAt = Date.now();
    const recoveredMs = await pollMs(async () => (await rest(server, "GET", listPath, { key: server.internalToken })).status === 200, RECOVERY_BOUND_MS);
    const readyMs = await pollMs(async () => (await get(`${server.url}/readyz`)) === 200, RECOVERY_BOUND_MS);
    log(`MongoDB back after an outage of ${outageMs} ms: requests succeed ${recoveredMs} ms and /readyz is 200 ${readyMs} ms after it accepts connections again`);
    expect(recoveredMs, "the server did not recover by itself").not.toBeNull();
    expect(readyMs, "/readyz did not come back").not.toBeNull();
    expect(Date.now() - upAt).toBeLessThan(RECOVERY_BOUND_MS + 5000);

    // nothing lost, nothing half-written: exactly the keys from before, no event for a key that does not exist
    const after = (await rest(server, "GET", listPath, { key: server.internalToken })).body.data;
    expect(after.map((k: any) => k.id), "a key whose issue got 503 exists").toEqual(before.map((k: any) => k.id));
    expect(after.find((k: any) => k.id === child.id).total_requests).toBeGreaterThanOrEqual(3);
    const trail = await auditTrail(server, customerId);
    const issuedTargets = trail.filter((e) => e.action === "api_key.issued").map((e) => e.target.key_id).sort();
    expect(issuedTargets, "an api_key.issued event for a key that does not exist").toEqual([child.id, root.id].sort());

    // and it works again: the keys from before, issuing, rate limiting
    expect((await rest(server, "GET", "/v1/api-keys", { key: root.secret })).status).toBe(200);
    const auth = await grpc.call("authenticate", { key: child.secret }, internal);
    expect(auth.ok && auth.res.valid).toBe(true);
    expect((await rest(server, "POST", "/v1/api-keys", { key: root.secret, body: { name: "after-outage" } })).status).toBe(201);
    const c = await grpc.call("chargeRateLimit", { customerId }, internal);
    expect(c.ok && c.res.allowed).toBe(true);
    expect(alive(server)).toBe(true);
  }, 60_000);
});

describe("MongoDB unreachable at start", () => {
  it("the server exits non-zero within a bounded time with one clear line on stderr naming MongoDB", async () => {
    const port = await freePort(); // nothing listens there
    const t0 = Date.now();
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: REPO,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        HOST: "127.0.0.1",
        PORT: "0",
        GRPC_PORT: "0",
        METRICS_PORT: "0",
        WORKERS: "1",
        INTERNAL_TOKEN,
        MONGODB_URI: `mongodb://127.0.0.1:${port}/`,
        MONGODB_DB: "zpk_unreachable",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
      child.once("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const ms = Date.now() - t0;
    const lines = stderr.split("\n").filter((l) => l.trim() !== "");
    log(`unreachable MongoDB at start: exit ${code} after ${ms} ms (process start included); stderr: ${JSON.stringify(lines.at(-1))}`);
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).not.toBe(0);
    expect(code).not.toBeNull(); // it exited by itself
    expect(ms, "took too long to give up").toBeLessThan(30_000);
    expect(stdout).not.toContain('"msg":"ready"');
    const last = lines.at(-1) ?? "";
    expect(last).toMatch(/^zpk: /);
    expect(last).toMatch(/mongo/i);
    expect(last).toContain(`127.0.0.1:${port}`);
    expect(stderr, "a stack trace on stderr").not.toMatch(/\n\s+at /);
  }, 45_000);
});

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN). */
function canMountTmpfs(): boolean {
  const dir = mkdtempSync(join(tmpdir(), "zpk-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "ignore" });
    execFileSync("umount", [dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(dir);
  }
}
const MOUNT_OK = canMountTmpfs();

describe("embedded store: the disk is full", () => {
  let dir: string;
  let server: RunningServer | undefined;
  let grpc: RpcClient | undefined;

  beforeAll(async () => {
    if (!MOUNT_OK) return;
    dir = mkdtempSync(join(tmpdir(), "zpk-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", dir]);
    server = await startServer({ DATA_DIR: dir });
    grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
  }, 60_000);
  afterAll(async () => {
    grpc?.close();
    await server?.stop();
    if (dir) {
      try {
        execFileSync("umount", [dir], { stdio: "ignore" });
      } catch {
        execFileSync("umount", ["-l", dir], { stdio: "ignore" });
      }
      rmdirSync(dir);
    }
  });

  it.skipIf(!MOUNT_OK)("SQLITE_FULL: writes answer 503 unavailable / UNAVAILABLE, reads keep working, /readyz 503, no crash; freeing space recovers without a restart", async () => {
    const s = server!;
    const customerId = uuid();
    const root = await issueAsInternal(s, customerId, { name: "root" });
    const listPath = `/v1/api-keys?include_inactive=true&customer_id=${customerId}`;
    const before = (await rest(s, "GET", listPath, { key: s.internalToken })).body.data;

    const filler = join(dir, "filler");
    const fd = openSync(filler, "w");
    const chunk = Buffer.alloc(64 * 1024);
    let filled = 0;
    try {
      for (;;) filled += writeSync(fd, chunk);
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe("ENOSPC");
    }
    try {
      for (;;) filled += writeSync(fd, chunk, 0, 512); // the last partial pages
    } catch {}
    closeSync(fd);

    let authenticated = 0;
    const [issue, withKey, charge, readyz, healthz] = await Promise.all([
      timed(() => rest(s, "POST", "/v1/api-keys", { key: s.internalToken, body: { name: "disk-full", customer_id: customerId } })),
      timed(() => rest(s, "GET", "/v1/api-keys", { key: root.secret })), // charges a token: a write
      timed(() => grpc!.call("chargeRateLimit", { customerId }, internal)),
      timed(() => get(`${s.url}/readyz`)),
      timed(() => get(`${s.url}/healthz`)),
    ]);
    log(`disk full (filler ${filled} B): issue ${issue.value.status} in ${issue.ms} ms, REST with key ${withKey.value.status} in ${withKey.ms} ms, ChargeRateLimit ${charge.value.ok ? "ok" : charge.value.code} in ${charge.ms} ms, /readyz ${readyz.value}, /healthz ${healthz.value}`);
    expectError(issue.value, 503, "unavailable");
    expectError(withKey.value, 503, "unavailable");
    expect(charge.value.ok ? "ok" : charge.value.code).toBe(14);
    for (const r of [issue, withKey, charge]) expect(r.ms).toBeLessThan(REQUEST_BOUND_MS);
    expect(healthz.value).toBe(200);
    // reads do not need space: an internal list and a charge-free Authenticate still answer
    expect((await rest(s, "GET", listPath, { key: s.internalToken })).status).toBe(200);
    const auth = await grpc!.call("authenticate", { key: root.secret }, internal);
    expect(auth.ok && auth.res.valid).toBe(true);
    authenticated++;
    expect(alive(s)).toBe(true);
    // issue 7: "/readyz false" while the disk is full
    expect.soft(readyz.value, "/readyz stays 200 while every write fails with SQLITE_FULL").toBe(503);

    unlinkSync(filler);
    const recoveredMs = await pollMs(
      async () => (await rest(s, "POST", "/v1/api-keys", { key: s.internalToken, body: { name: "after", customer_id: customerId } })).status === 201,
      RECOVERY_BOUND_MS,
    );
    log(`disk space freed: issuing succeeds again after ${recoveredMs} ms, no restart`);
    expect(recoveredMs).not.toBeNull();
    expect(await get(`${s.url}/readyz`)).toBe(200);
    expect((await rest(s, "GET", "/v1/api-keys", { key: root.secret })).status).toBe(200);
    authenticated++;

    // nothing half-written: the refused issue left no key and no event; the usage counted while full was kept
    const after = (await rest(s, "GET", listPath, { key: s.internalToken })).body.data;
    const names = after.map((k: any) => k.name);
    expect(names).not.toContain("disk-full");
    expect(after.length).toBe(before.length + 1);
    const trail = await auditTrail(s, customerId);
    expect(trail.filter((e) => e.action === "api_key.issued").map((e) => e.target.name).sort()).toEqual(["after", "root"]);
    await sleep(300);
    const rootAfter = (await rest(s, "GET", `/v1/api-keys/${root.id}?customer_id=${customerId}`, { key: s.internalToken })).body;
    expect(rootAfter.total_requests, "usage recorded while the disk was full was lost").toBeGreaterThanOrEqual(authenticated);
    expect(alive(s)).toBe(true);
  }, 60_000);
});

describe("embedded store: another process holds the database's write lock", () => {
  let server: RunningServer;
  let grpc: RpcClient;

  beforeAll(async () => {
    server = await startServer({ USAGE_FLUSH_INTERVAL_MS: "60000", AUDIT_FLUSH_INTERVAL_MS: "1000" });
    grpc = grpcJsClient(`127.0.0.1:${server.grpcPort}`);
  }, 60_000);
  afterAll(async () => {
    grpc?.close();
    await server?.stop();
  });

  it("SQLITE_BUSY after busy_timeout: an issue answers 503 unavailable (not 500) in bounded time; released, it works again without a restart", async () => {
    const customerId = uuid();
    await issueAsInternal(server, customerId, { name: "root" });
    const listPath = `/v1/api-keys?include_inactive=true&customer_id=${customerId}`;
    const before = (await rest(server, "GET", listPath, { key: server.internalToken })).body.data;

    const holder = new Database(join(server.dataDir, "zpk.sqlite"), { timeout: 10_000 });
    let released = false;
    try {
      holder.prepare("BEGIN IMMEDIATE").run(); // the write lock, held until ROLLBACK
      const t0 = performance.now();
      const issueP = rest(server, "POST", "/v1/api-keys", { key: server.internalToken, body: { name: "locked-out", customer_id: customerId } });
      await sleep(100);
      const healthz = await timed(() => get(`${server.url}/healthz`));
      const issue = await issueP;
      const issueMs = Math.round(performance.now() - t0);
      const charge = await timed(() => grpc.call("chargeRateLimit", { customerId }, internal));
      log(`write lock held elsewhere: issue ${issue.status} after ${issueMs} ms; /healthz meanwhile ${healthz.value} after ${healthz.ms} ms (event loop blocked by the synchronous busy wait); ChargeRateLimit ${charge.value.ok ? "ok" : charge.value.code} after ${charge.ms} ms`);
      expectError(issue, 503, "unavailable");
      expect(issueMs).toBeLessThan(REQUEST_BOUND_MS);
      expect(charge.value.ok ? "ok" : charge.value.code).toBe(14);
      expect(charge.ms).toBeLessThan(REQUEST_BOUND_MS);
      expect(healthz.value).toBe(200);
      expect(healthz.ms, "/healthz hung while a writer waited for the lock").toBeLessThan(REQUEST_BOUND_MS);
      expect(alive(server)).toBe(true);

      holder.prepare("ROLLBACK").run();
      released = true;
      const t1 = performance.now();
      const ok = await rest(server, "POST", "/v1/api-keys", { key: server.internalToken, body: { name: "after-lock", customer_id: customerId } });
      log(`lock released: issue ${ok.status} after ${Math.round(performance.now() - t1)} ms`);
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    } finally {
      if (!released) holder.prepare("ROLLBACK").run();
      holder.close();
    }
    const after = (await rest(server, "GET", listPath, { key: server.internalToken })).body.data;
    expect(after.map((k: any) => k.name)).not.toContain("locked-out");
    expect(after.length).toBe(before.length + 1);
    const trail = await auditTrail(server, customerId);
    expect(trail.map((e) => e.target?.name)).not.toContain("locked-out");
  }, 60_000);
});
