import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Sessions } from "../../src/domain/sessions.js";
import type { KeyRecord } from "../../src/domain/types.js";
import { SqliteStore } from "../../src/storage/sqlite/sqlite-store.js";
import { keyRecord, T0 } from "../storage/store-contract.js";

/**
 * Dashboard sessions over a real (SQLite) store with a controlled clock: lifetime, idle timeout,
 * the per-key bound, the key's state, and one-time portal grants.
 */
const MIN = 60_000;
let dir: string;
let store: SqliteStore;
let now: number;
let keys: Map<string, KeyRecord>;
let sessions: Sessions;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "zpk-sessions-"));
  store = new SqliteStore(dir);
  now = T0;
  keys = new Map();
  sessions = new Sessions(store, async (d) => keys.get(d) ?? null, () => now, { ttlMs: 60 * MIN, idleMs: 10 * MIN, maxPerSubject: 3, portalTtlMs: 5 * MIN });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const addKey = (over: Partial<KeyRecord> = {}) => {
  const k = keyRecord({ createdAt: T0, updatedAt: T0, ...over });
  keys.set(k.digest, k);
  return k;
};

describe("Sessions", () => {
  it("acts as its key until the absolute lifetime, even when used all along", async () => {
    const key = addKey({ scopes: ["api_keys:read"] });
    const { token } = await sessions.signIn(key);
    for (let t = 0; t < 60; t += 5) {
      now = T0 + t * MIN;
      const s = await sessions.resolve(token);
      expect(s?.caller).toEqual({ kind: "key", key });
    }
    now = T0 + 60 * MIN;
    expect(await sessions.resolve(token)).toBeNull();
  });

  it("ends after the idle timeout, and never outlives its key's expiry", async () => {
    const { token } = await sessions.signIn(addKey());
    now = T0 + 10 * MIN + 1;
    expect(await sessions.resolve(token)).toBeNull();
    const expiring = addKey({ expiresAt: T0 + 2 * MIN });
    const second = await sessions.signIn(expiring);
    expect(second.record.expiresAt).toBe(T0 + 2 * MIN);
  });

  it("ends when the key is revoked, expired or disabled, and on sign-out", async () => {
    const key = addKey();
    const a = await sessions.signIn(key);
    const b = await sessions.signIn(key);
    keys.set(key.digest, { ...key, revokedAt: now });
    expect(await sessions.resolve(a.token)).toBeNull();
    keys.set(key.digest, key);
    expect(await sessions.resolve(b.token)).toBeNull(); // all of the key's sessions were deleted
    const c = await sessions.signIn(key);
    keys.set(key.digest, { ...key, enabled: false } as KeyRecord);
    expect(await sessions.resolve(c.token)).toBeNull();
    keys.set(key.digest, key);
    const d = await sessions.signIn(key);
    await sessions.signOut(d.token);
    expect(await sessions.resolve(d.token)).toBeNull();
  });

  it("keeps at most maxPerSubject sessions per key: the oldest ends first", async () => {
    const key = addKey();
    const tokens = [];
    for (let i = 0; i < 4; i++) {
      now = T0 + i;
      tokens.push((await sessions.signIn(key)).token);
    }
    const alive = await Promise.all(tokens.map(async (t) => (await sessions.resolve(t)) !== null));
    expect(alive).toEqual([false, true, true, true]);
  });

  it("a portal grant works once, within its validity, with the granted scopes and binding", async () => {
    const input = { customerId: crypto.randomUUID(), scopes: ["api_keys:read"], instanceId: crypto.randomUUID(), returnUrl: "", createdBy: "billing" };
    const grant = await sessions.createGrant(input);
    const started = await sessions.redeem(grant.token);
    expect(started).not.toBeNull();
    expect(await sessions.redeem(grant.token)).toBeNull();
    const s = await sessions.resolve(started!.token);
    expect(s?.caller.kind === "key" && s.caller.key).toMatchObject({ customerId: input.customerId, scopes: input.scopes, instanceId: input.instanceId });
    expect(s?.caller.kind === "key" && s.caller.actor).toEqual({ type: "internal", name: "portal:billing" });
    const late = await sessions.createGrant(input);
    now += 5 * MIN;
    expect(await sessions.redeem(late.token)).toBeNull();
    expect(await sessions.resolve(grant.token)).toBeNull(); // a grant token is not a session token
  });
});
