import { describeDashboardStoreContract } from "./dashboard-store-contract.js";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { StorageUnavailableError } from "../../src/domain/errors.js";
import { SqliteStore } from "../../src/storage/sqlite/sqlite-store.js";
import { auditEvent, describeStoreContract, issuedEvent, keyRecord, listQuery, T0 } from "./store-contract.js";

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "zpk-sqlite-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) {
    try {
      chmodSync(d, 0o755);
    } catch {
      /* already gone */
    }
    rmSync(d, { recursive: true, force: true });
  }
});

describeDashboardStoreContract("SqliteStore", async () => {
  const dir = freshDir();
  const store = new SqliteStore(dir);
  return { store, cleanup: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
});

describeStoreContract("SqliteStore", async () => {
  const dir = freshDir();
  const store = new SqliteStore(dir);
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe("SqliteStore (embedded only)", () => {
  it("opens a file written before audit_events.instance_id existed: old events match no instance, new ones do", async () => {
    const dir = freshDir();
    const old = new Database(join(dir, "zpk.sqlite"));
    old.exec(`CREATE TABLE audit_events (id TEXT PRIMARY KEY, customer_id TEXT, action TEXT NOT NULL, actor TEXT NOT NULL,
      target_key_id TEXT, target TEXT, outcome TEXT NOT NULL, reason TEXT, ip TEXT, user_agent TEXT, request_id TEXT,
      time INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID`);
    const before = auditEvent({ time: T0 });
    old.prepare(`INSERT INTO audit_events VALUES (?, ?, 'api_key.issued', '{"type":"internal","name":"signup"}', NULL, NULL,
      'success', NULL, NULL, NULL, NULL, ?, 1)`).run(before.id, before.customerId, T0);
    old.close();
    const store = new SqliteStore(dir);
    try {
      const instanceId = crypto.randomUUID();
      const after = auditEvent({ customerId: before.customerId, time: T0 + 1, instanceId });
      await store.appendAuditEvents([after]);
      const q = { customerId: before.customerId, action: null, targetId: null, since: null, until: null, beforeId: null, limit: 10 };
      expect(await store.listAuditEvents({ ...q, instanceId: null })).toEqual([after, before]);
      expect(await store.listAuditEvents({ ...q, instanceId })).toEqual([after]);
    } finally {
      await store.close();
    }
  });

  it("a list asked again shows what another process (a worker, the keys CLI) wrote to the same file in between", async () => {
    const dir = freshDir();
    const server = new SqliteStore(dir);
    const cli = new SqliteStore(dir);
    try {
      const customer = crypto.randomUUID();
      const key = keyRecord({ customerId: customer });
      await server.insertKey(key, issuedEvent(key));
      const ids = async () => (await server.listKeys(listQuery({ customerId: customer }))).map((k) => k.id);
      expect(await ids()).toEqual([key.id]);
      expect(await ids()).toEqual([key.id]);
      await cli.revokeKey(customer, key.id, T0 + 1, (k) => auditEvent({ customerId: k.customerId, action: "api_key.revoked", time: T0 + 1 }));
      expect(await ids()).toEqual([]);
      const next = keyRecord({ customerId: customer });
      await cli.insertKey(next, issuedEvent(next));
      expect(await ids()).toEqual([next.id]);
    } finally {
      await cli.close();
      await server.close();
    }
  });

  it("keeps keys, usage, audit events, buckets and policies across close and reopen of the same dir", async () => {
    const dir = freshDir();
    const first = new SqliteStore(dir);
    const key = keyRecord({ scopes: ["a:b"], metadata: { k: "v" }, instanceId: crypto.randomUUID(), expiresAt: T0 + 10_000 });
    const issued = issuedEvent(key);
    const failed = auditEvent({ customerId: key.customerId, action: "auth.failed", reason: "revoked", time: T0 + 5 });
    await first.insertKey(key, issued);
    await first.appendAuditEvents([failed]);
    await first.recordUsage([{ keyId: key.id, lastUsedAt: T0 + 42, count: 5 }]);
    await first.revokeKey(key.customerId, key.id, T0 + 100, (k) => auditEvent({ customerId: k.customerId, action: "api_key.revoked", time: T0 + 100 }));
    await first.setRateLimitPolicy(key.customerId, { capacity: 90, refillPerSecond: 3 });
    await first.updateBucket(key.customerId, { capacity: 60, refillPerSecond: 1 }, (_s, p) => ({
      next: { tokens: 12.5, at: T0 + 7 },
      decision: { allowed: true, limit: p.capacity, remaining: 12, retryAfterSeconds: 0, resetAt: T0 },
    }));
    await first.close();

    const second = new SqliteStore(dir);
    try {
      const expected = { ...key, totalRequests: 5, lastUsedAt: T0 + 42, revokedAt: T0 + 100 };
      expect({ ...(await second.findKeyByDigest(key.digest)), updatedAt: 0 }).toEqual({ ...expected, updatedAt: 0 });
      const events = await second.listAuditEvents({
        customerId: key.customerId, instanceId: null, action: null, targetId: null, since: null, until: null, beforeId: null, limit: 10,
      });
      expect(events.map((e) => e.action).sort()).toEqual(["api_key.issued", "api_key.revoked", "auth.failed"]);
      expect(events).toContainEqual(issued);
      expect(events).toContainEqual(failed);
      let state: unknown;
      await second.updateBucket(key.customerId, { capacity: 60, refillPerSecond: 1 }, (s, p) => {
        state = [s, p];
        return { next: s!, decision: { allowed: true, limit: p.capacity, remaining: 12, retryAfterSeconds: 0, resetAt: T0 } };
      });
      expect(state).toEqual([{ tokens: 12.5, at: T0 + 7 }, { capacity: 90, refillPerSecond: 3 }]);
    } finally {
      await second.close();
    }
  });

  it("two stores open on one dir (server and keys CLI) see each other's writes and share buckets", async () => {
    const dir = freshDir();
    const server = new SqliteStore(dir);
    const cli = new SqliteStore(dir);
    try {
      const key = keyRecord();
      await cli.insertKey(key, issuedEvent(key));
      expect(await server.findKeyByDigest(key.digest)).toEqual(key);

      const customer = crypto.randomUUID();
      const policy = { capacity: 10, refillPerSecond: 1 };
      const takeOne = (s: { tokens: number; at: number } | null, p: typeof policy) => {
        const tokens = s ? s.tokens : p.capacity;
        const allowed = tokens >= 1;
        return {
          next: { tokens: allowed ? tokens - 1 : tokens, at: T0 },
          decision: { allowed, limit: p.capacity, remaining: Math.floor(allowed ? tokens - 1 : tokens), retryAfterSeconds: 0, resetAt: T0 },
        };
      };
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) => (i % 2 ? server : cli).updateBucket(customer, policy, takeOne)),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
    } finally {
      await server.close();
      await cli.close();
    }
  });

  it("after close, calls fail with StorageUnavailableError rather than a driver error", async () => {
    const dir = freshDir();
    const store = new SqliteStore(dir);
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(store.findKeyByDigest("x")).rejects.toBeInstanceOf(StorageUnavailableError);
  });

  // chmod does not stop root from writing, so this check only means something for other users;
  // when the suite runs as root it is not registered at all.
  if (process.getuid?.() !== 0) {
    it("a read-only data dir fails with StorageUnavailableError and writes nothing", async () => {
      const dir = freshDir();
      const seed = new SqliteStore(dir);
      const kept = keyRecord();
      await seed.insertKey(kept, issuedEvent(kept));
      await seed.close();
      chmodSync(join(dir, "zpk.sqlite"), 0o444);
      chmodSync(dir, 0o555);

      let store: SqliteStore;
      try {
        store = new SqliteStore(dir);
      } catch (e) {
        expect(e).toBeInstanceOf(StorageUnavailableError);
        return;
      }
      try {
        const key = keyRecord();
        await expect(store.insertKey(key, issuedEvent(key))).rejects.toBeInstanceOf(StorageUnavailableError);
      } finally {
        await store.close();
      }
    });
  }

  it("a file created before issue 13 gains the new columns at open, and its keys read with the defaults", async () => {
    const dir = freshDir();
    const old = new Database(join(dir, "zpk.sqlite"));
    old.exec(`CREATE TABLE api_keys (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, instance_id TEXT, name TEXT NOT NULL,
      prefix TEXT NOT NULL, environment TEXT NOT NULL, scopes TEXT NOT NULL, metadata TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
      last_used_at INTEGER, total_requests INTEGER NOT NULL DEFAULT 0, expires_at INTEGER, created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL, revoked_at INTEGER) WITHOUT ROWID;
      CREATE TABLE audit_events (id TEXT PRIMARY KEY, customer_id TEXT, action TEXT NOT NULL, actor TEXT NOT NULL,
      target_key_id TEXT, target TEXT, outcome TEXT NOT NULL, reason TEXT, ip TEXT, user_agent TEXT, request_id TEXT,
      time INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID;`);
    const k = keyRecord();
    old.prepare(`INSERT INTO api_keys VALUES (?, ?, NULL, 'old', ?, 'live', '[]', '{"team":"bi"}', ?, NULL, 0, NULL, ?, ?, NULL)`)
      .run(k.id, k.customerId, k.prefix, k.digest, T0, T0);
    old.close();
    const store = new SqliteStore(dir);
    expect(await store.findKeyByDigest(k.digest)).toMatchObject({ id: k.id, enabled: true, rolledFrom: null, rolledTo: null, lastFour: "" });
    expect(await store.countKeys({ customerId: k.customerId, instanceId: null, includeInactive: false, now: T0, beforeId: null, limit: 1, metadata: { team: "bi" } })).toBe(1);
    const fresh = keyRecord({ customerId: k.customerId });
    await store.insertKey(fresh, issuedEvent(fresh));
    expect(await store.findKeyByDigest(fresh.digest)).toEqual(fresh);
    await store.close();
  });
});
