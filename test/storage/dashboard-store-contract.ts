import { createHash, randomBytes, randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SessionRecord } from "../../src/domain/session-store.js";
import type { Store } from "../../src/domain/store.js";
import { keyId, T0 } from "./store-contract.js";

/**
 * The Store contract for the dashboard's data (src/domain/session-store.ts): sessions and
 * one-time portal grants, and hourly usage counts. Run against SQLite and MongoDB like the main
 * contract (store-contract.ts), with an empty store per test.
 */
export function describeDashboardStoreContract(
  name: string,
  makeStore: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  describe(`Store contract (dashboard): ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe("sessions", () => {
      it("insertSession then findSession returns every field; unknown digests and grants are not sessions", async () => {
        const s = session({ instanceId: randomUUID(), scopes: ["api_keys:read"], returnUrl: "https://app.example/", createdBy: "billing" });
        const g = session({ kind: "grant" });
        await store.insertSession(s, 10);
        await store.insertSession(g, 10);
        expect(await store.findSession(s.digest)).toEqual(s);
        expect(await store.findSession(g.digest)).toBeNull();
        expect(await store.findSession(digest())).toBeNull();
      });

      it("keeps at most maxPerSubject sessions per subject and kind, dropping the oldest", async () => {
        const subject = `key:${keyId()}`;
        const all = Array.from({ length: 5 }, (_, i) => session({ subject, createdAt: T0 + i * 1000 }));
        for (const s of all) await store.insertSession(s, 3);
        const other = session({ createdAt: T0 });
        await store.insertSession(other, 3);
        const kept = await Promise.all(all.map((s) => store.findSession(s.digest)));
        expect(kept.map((s) => s !== null)).toEqual([false, false, true, true, true]);
        expect(await store.findSession(other.digest)).not.toBeNull();
      });

      it("touchSession moves lastSeenAt forward only; deleteSession and deleteSessionsOfKey end sessions", async () => {
        const key = keyId();
        const a = session({ keyId: key, subject: `key:${key}` });
        const b = session({ keyId: key, subject: `key:${key}` });
        const c = session();
        for (const s of [a, b, c]) await store.insertSession(s, 10);
        await store.touchSession(a.digest, T0 + 5000);
        await store.touchSession(a.digest, T0 + 10);
        expect((await store.findSession(a.digest))!.lastSeenAt).toBe(T0 + 5000);
        await store.deleteSession(c.digest);
        expect(await store.findSession(c.digest)).toBeNull();
        expect(await store.deleteSessionsOfKey(key)).toBe(2);
        expect(await store.findSession(a.digest)).toBeNull();
        expect(await store.findSession(b.digest)).toBeNull();
      });

      it("takeGrant hands a grant to exactly one of many concurrent callers, once", async () => {
        const g = session({ kind: "grant", subject: `portal:${randomUUID()}` });
        await store.insertSession(g, 10);
        const results = await Promise.all(Array.from({ length: 8 }, () => store.takeGrant(g.digest)));
        expect(results.filter((r) => r !== null)).toEqual([g]);
        expect(await store.takeGrant(g.digest)).toBeNull();
        const s = session();
        await store.insertSession(s, 10);
        expect(await store.takeGrant(s.digest)).toBeNull(); // a session is not a grant
        expect(await store.findSession(s.digest)).not.toBeNull();
      });

      it("deleteExpiredSessions removes sessions and grants past their expiry only", async () => {
        const old = session({ expiresAt: T0 + 100 });
        const grant = session({ kind: "grant", expiresAt: T0 + 100 });
        const live = session({ expiresAt: T0 + 10_000 });
        for (const s of [old, grant, live]) await store.insertSession(s, 10);
        await store.deleteExpiredSessions(T0 + 1000);
        expect(await store.findSession(old.digest)).toBeNull();
        expect(await store.takeGrant(grant.digest)).toBeNull();
        expect(await store.findSession(live.digest)).not.toBeNull();
      });
    });

    describe("hourly usage", () => {
      const H = 3_600_000;
      it("adds counts per hour and outcome, sums over keys, filters by key, instance and window", async () => {
        const customer = randomUUID();
        const instance = randomUUID();
        const k1 = keyId();
        const k2 = keyId();
        const row = (keyId: string, hour: number, outcome: string, count: number, instanceId: string | null = null) =>
          ({ customerId: customer, keyId, instanceId, hour, outcome, count });
        await store.recordHourlyUsage([row(k1, T0, "valid", 2), row(k2, T0, "valid", 3, instance), row(k1, T0, "revoked", 1)]);
        await store.recordHourlyUsage([row(k1, T0, "valid", 5), row(k1, T0 + H, "valid", 1), row(k1, T0 + 2 * H, "valid", 9)]);
        await store.recordHourlyUsage([{ ...row(k1, T0, "valid", 100), customerId: randomUUID() }]);
        const q = { customerId: customer, keyId: null, instanceId: null, since: T0, until: T0 + 2 * H };
        expect(await store.hourlyUsage(q)).toEqual([
          { hour: T0, outcome: "revoked", count: 1 },
          { hour: T0, outcome: "valid", count: 10 },
          { hour: T0 + H, outcome: "valid", count: 1 },
        ]);
        expect(await store.hourlyUsage({ ...q, keyId: k2 })).toEqual([{ hour: T0, outcome: "valid", count: 3 }]);
        expect(await store.hourlyUsage({ ...q, instanceId: instance })).toEqual([{ hour: T0, outcome: "valid", count: 3 }]);
        await store.deleteHourlyUsageBefore(T0 + H);
        expect(await store.hourlyUsage({ ...q, until: T0 + 3 * H })).toEqual([
          { hour: T0 + H, outcome: "valid", count: 1 },
          { hour: T0 + 2 * H, outcome: "valid", count: 9 },
        ]);
      });
    });
  });
}

const digest = () => createHash("sha256").update(randomBytes(32)).digest("hex");

function session(over: Partial<SessionRecord> = {}): SessionRecord {
  const key = keyId();
  return {
    digest: digest(),
    kind: "session",
    subject: `key:${key}`,
    customerId: randomUUID(),
    keyId: key,
    keyDigest: digest(),
    scopes: [],
    instanceId: null,
    returnUrl: null,
    createdBy: null,
    createdAt: T0,
    lastSeenAt: T0,
    expiresAt: T0 + 3_600_000,
    ...over,
  };
}
