import { createHash, randomBytes, randomUUID } from "node:crypto";
import { monotonicFactory } from "ulid";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BucketState } from "../../src/domain/rate-limit/token-bucket.js";
import type { AuditEvent, KeyRecord, RateLimitDecision, RateLimitPolicy } from "../../src/domain/types.js";
import type { AuditQuery, KeyListQuery, Store } from "../../src/domain/store.js";
import { describeLifecycleContract } from "./store-contract-lifecycle.js";

/**
 * The storage contract (src/domain/store.ts, the domain's storage port): what every Store implementation must do, tested
 * only through the interface and its documented behaviour, so the embedded SQLite store and the
 * MongoDB store pass the very same suite.
 *
 * `makeStore` is called before every test and must return an EMPTY store (fresh temp dir, fresh
 * database name, …); `cleanup` closes it and removes whatever it created.
 */
export function describeStoreContract(
  name: string,
  makeStore: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });

    // Issue 13: batch, roll, first use, counts, metadata filters, idempotency records.
    describeLifecycleContract(() => store);

    describe("keys", () => {
      it("insertKey then findKeyByDigest and findKey return every field unchanged", async () => {
        const customer = randomUUID();
        const full = keyRecord({
          customerId: customer,
          instanceId: randomUUID(),
          name: "billing – prod ✓",
          environment: "test",
          scopes: ["api_keys:read", "audit:read", "orders:write"],
          metadata: { team: "payments", "cost-center": "42", emoji: "🔑" },
          lastUsedAt: T0 + 1234,
          totalRequests: 77,
          expiresAt: T0 + 86_400_000,
          createdAt: T0,
          updatedAt: T0 + 500,
          revokedAt: T0 + 999,
        });
        const bare = keyRecord({ customerId: customer });
        await store.insertKey(full, issuedEvent(full));
        await store.insertKey(bare, issuedEvent(bare));

        expect(await store.findKeyByDigest(full.digest)).toEqual(full);
        expect(await store.findKey(customer, full.id)).toEqual(full);
        expect(await store.findKeyByDigest(bare.digest)).toEqual(bare);
        expect(await store.findKey(customer, bare.id)).toEqual(bare);
      });

      it("insertKey stores its api_key.issued event", async () => {
        const key = keyRecord();
        const event = issuedEvent(key);
        await store.insertKey(key, event);
        expect(await store.listAuditEvents(auditQuery({ customerId: key.customerId }))).toEqual([event]);
      });

      it("unknown digest or id is null", async () => {
        const key = keyRecord();
        await store.insertKey(key, issuedEvent(key));
        expect(await store.findKeyByDigest(digest())).toBeNull();
        expect(await store.findKey(key.customerId, keyId())).toBeNull();
      });

      it("findKey with another customer's id returns null", async () => {
        const key = keyRecord();
        await store.insertKey(key, issuedEvent(key));
        expect(await store.findKey(randomUUID(), key.id)).toBeNull();
        expect(await store.findKey(key.customerId, key.id)).not.toBeNull();
      });

      it("a second key with the same digest is rejected and nothing of it is written", async () => {
        const first = keyRecord();
        await store.insertKey(first, issuedEvent(first));
        const dup = keyRecord({ digest: first.digest, customerId: randomUUID() });
        const dupEvent = issuedEvent(dup);
        await expect(store.insertKey(dup, dupEvent)).rejects.toThrow();

        expect(await store.findKeyByDigest(first.digest)).toEqual(first);
        expect(await store.findKey(dup.customerId, dup.id)).toBeNull();
        const events = await store.listAuditEvents(auditQuery({ customerId: null }));
        expect(events.map((e) => e.id)).not.toContain(dupEvent.id);
      });
    });

    describe("listKeys", () => {
      it("lists only the customer's keys, newest (highest id) first, whatever the insertion order", async () => {
        const customer = randomUUID();
        const keys = Array.from({ length: 7 }, () => keyRecord({ customerId: customer }));
        const other = keyRecord();
        for (const k of shuffle([...keys, other])) await store.insertKey(k, issuedEvent(k));

        const listed = await store.listKeys(listQuery({ customerId: customer }));
        expect(listed.map((k) => k.id)).toEqual(idsDesc(keys));
        expect(listed[0]).toEqual(keys[keys.length - 1]);
      });

      it("the same list asked again with another limit reads that many keys, in either order", async () => {
        const customer = randomUUID();
        const keys = Array.from({ length: 6 }, () => keyRecord({ customerId: customer }));
        for (const k of keys) await store.insertKey(k, issuedEvent(k));
        for (const limit of [2, 6, 3, 6]) {
          expect((await store.listKeys(listQuery({ customerId: customer, limit }))).map((k) => k.id)).toEqual(idsDesc(keys).slice(0, limit));
        }
      });

      it("limit and beforeId page through every key once, with no duplicates or gaps", async () => {
        const customer = randomUUID();
        const keys = Array.from({ length: 11 }, () => keyRecord({ customerId: customer }));
        for (const k of shuffle(keys)) await store.insertKey(k, issuedEvent(k));

        const seen: string[] = [];
        let beforeId: string | null = null;
        for (let page = 0; page < 10; page++) {
          const got: KeyRecord[] = await store.listKeys(listQuery({ customerId: customer, beforeId, limit: 4 }));
          expect(got.length).toBeLessThanOrEqual(4);
          if (got.length === 0) break;
          seen.push(...got.map((k) => k.id));
          beforeId = got[got.length - 1]!.id;
        }
        expect(seen).toEqual(idsDesc(keys));

        // beforeId is exclusive: only ids strictly below it
        const sorted = idsDesc(keys);
        const after = await store.listKeys(listQuery({ customerId: customer, beforeId: sorted[3]!, limit: 100 }));
        expect(after.map((k) => k.id)).toEqual(sorted.slice(4));
      });

      it("instanceId filter returns only keys bound to that instance", async () => {
        const customer = randomUUID();
        const inst = randomUUID();
        const bound = [keyRecord({ customerId: customer, instanceId: inst }), keyRecord({ customerId: customer, instanceId: inst })];
        const others = [keyRecord({ customerId: customer }), keyRecord({ customerId: customer, instanceId: randomUUID() })];
        for (const k of [...bound, ...others]) await store.insertKey(k, issuedEvent(k));

        expect((await store.listKeys(listQuery({ customerId: customer, instanceId: inst }))).map((k) => k.id)).toEqual(idsDesc(bound));
        expect(await store.listKeys(listQuery({ customerId: customer, instanceId: randomUUID() }))).toEqual([]);
        expect(await store.listKeys(listQuery({ customerId: customer, instanceId: null }))).toHaveLength(4);
      });

      it("includeInactive=false hides revoked keys and keys expired at `now` (expiresAt <= now)", async () => {
        const customer = randomUUID();
        const now = T0 + 10_000_000;
        const active = keyRecord({ customerId: customer });
        const expiresLater = keyRecord({ customerId: customer, expiresAt: now + 1 });
        const expiresNow = keyRecord({ customerId: customer, expiresAt: now });
        const expired = keyRecord({ customerId: customer, expiresAt: now - 60_000 });
        const revoked = keyRecord({ customerId: customer, revokedAt: T0 });
        const revokedLater = keyRecord({ customerId: customer });
        const all = [active, expiresLater, expiresNow, expired, revoked, revokedLater];
        for (const k of all) await store.insertKey(k, issuedEvent(k));
        await store.revokeKey(customer, revokedLater.id, T0 + 5, (k) => revokedEvent(k));

        const activeOnly = await store.listKeys(listQuery({ customerId: customer, includeInactive: false, now }));
        expect(activeOnly.map((k) => k.id)).toEqual(idsDesc([active, expiresLater]));

        const everything = await store.listKeys(listQuery({ customerId: customer, includeInactive: true, now }));
        expect(everything.map((k) => k.id)).toEqual(idsDesc(all));

        // the same keys are active at an earlier `now`, apart from the revoked ones
        const earlier = await store.listKeys(listQuery({ customerId: customer, includeInactive: false, now: now - 120_000 }));
        expect(earlier.map((k) => k.id)).toEqual(idsDesc([active, expiresLater, expiresNow, expired]));
      });

      it("the same list asked again shows every write made in between, and drops a key once it expires with no write at all", async () => {
        const customer = randomUUID();
        const now = T0 + 10_000_000;
        const a = keyRecord({ customerId: customer });
        const b = keyRecord({ customerId: customer, expiresAt: now + 1_000 });
        for (const k of [a, b]) await store.insertKey(k, issuedEvent(k));
        const list = async (at = now) => await store.listKeys(listQuery({ customerId: customer, now: at }));
        const byId = async (id: string, at = now) => (await list(at)).find((k) => k.id === id);
        expect((await list()).map((k) => k.id)).toEqual(idsDesc([a, b]));
        expect((await list(now + 999)).map((k) => k.id)).toEqual(idsDesc([a, b]));
        expect((await list(now + 1_000)).map((k) => k.id)).toEqual([a.id]);

        await store.updateKey(customer, a.id, { name: "renamed", updatedAt: now }, issuedEvent);
        expect((await byId(a.id))?.name).toBe("renamed");
        await store.recordUsage([{ keyId: a.id, count: 3, lastUsedAt: now }]);
        expect((await byId(a.id))?.totalRequests).toBe(a.totalRequests + 3);
        const c = keyRecord({ customerId: customer });
        await store.insertKey(c, issuedEvent(c));
        expect((await list()).map((k) => k.id)).toEqual(idsDesc([a, b, c]));
        await store.revokeKey(customer, a.id, now, (k) => revokedEvent(k));
        expect((await list()).map((k) => k.id)).toEqual(idsDesc([b, c]));
        // A caller that changes what a list returned does not change the next list: either the
        // record is its own copy or the write throws (a frozen record the store hands out again).
        const listed = (await list())[0]!;
        try {
          listed.name = "scribbled";
        } catch (e) {
          expect(e).toBeInstanceOf(TypeError);
        }
        expect((await list())[0]!.name).not.toBe("scribbled");
      });

      it("filters combine with paging", async () => {
        const customer = randomUUID();
        const inst = randomUUID();
        const keys = Array.from({ length: 6 }, (_, i) =>
          keyRecord({ customerId: customer, instanceId: inst, revokedAt: i % 2 === 0 ? T0 : null }),
        );
        for (const k of keys) await store.insertKey(k, issuedEvent(k));
        const activeIds = idsDesc(keys.filter((k) => k.revokedAt === null));
        const page1 = await store.listKeys(listQuery({ customerId: customer, instanceId: inst, limit: 2 }));
        expect(page1.map((k) => k.id)).toEqual(activeIds.slice(0, 2));
        const page2 = await store.listKeys(listQuery({ customerId: customer, instanceId: inst, limit: 2, beforeId: page1[1]!.id }));
        expect(page2.map((k) => k.id)).toEqual(activeIds.slice(2));
      });
    });

    describe("countActiveKeys", () => {
      it("counts the customer's keys neither revoked nor expired at `now`, at most `atMost`", async () => {
        const customer = randomUUID();
        const keys = [
          keyRecord({ customerId: customer }),
          keyRecord({ customerId: customer, expiresAt: T0 + 1000 }),
          keyRecord({ customerId: customer, expiresAt: T0 }), // expired at T0
          keyRecord({ customerId: customer, revokedAt: T0 - 1 }),
          keyRecord({ customerId: customer, instanceId: randomUUID() }),
          keyRecord(), // another customer's
        ];
        for (const k of keys) await store.insertKey(k, issuedEvent(k));
        expect(await store.countActiveKeys(customer, T0, 100)).toBe(3);
        expect(await store.countActiveKeys(customer, T0 + 1000, 100)).toBe(2);
        expect(await store.countActiveKeys(customer, T0, 2)).toBe(2);
        expect(await store.countActiveKeys(randomUUID(), T0, 100)).toBe(0);
        await store.revokeKey(customer, keys[0]!.id, T0, revokedEvent);
        expect(await store.countActiveKeys(customer, T0, 100)).toBe(2);
      });
    });

    describe("updateKey", () => {
      it("patches only the given fields, returns the updated key and appends the event built from it", async () => {
        const key = keyRecord({ metadata: { a: "1" }, expiresAt: T0 + 1_000_000, scopes: ["x:y"] });
        await store.insertKey(key, issuedEvent(key));

        let seen: KeyRecord | null = null;
        const updated = await store.updateKey(key.customerId, key.id, { name: "renamed", updatedAt: T0 + 10 }, (k) => {
          seen = k;
          return updatedEvent(k);
        });
        const expected: KeyRecord = { ...key, name: "renamed", updatedAt: T0 + 10 };
        expect(updated).toEqual(expected);
        expect(seen).toEqual(expected);
        expect(await store.findKey(key.customerId, key.id)).toEqual(expected);

        const events = await store.listAuditEvents(auditQuery({ customerId: key.customerId, action: "api_key.updated" }));
        expect(events).toHaveLength(1);
        expect(events[0]!.target).toEqual({ keyId: key.id, prefix: key.prefix, name: "renamed" });
      });

      it("replaces metadata, sets and clears expiresAt, leaves the rest alone", async () => {
        const key = keyRecord({ name: "keep", metadata: { a: "1" }, expiresAt: T0 + 1_000_000 });
        await store.insertKey(key, issuedEvent(key));

        const m = await store.updateKey(key.customerId, key.id, { metadata: { b: "2" }, updatedAt: T0 + 1 }, updatedEvent);
        expect(m).toEqual({ ...key, metadata: { b: "2" }, updatedAt: T0 + 1 });

        const e = await store.updateKey(key.customerId, key.id, { expiresAt: T0 + 5_000_000, updatedAt: T0 + 2 }, updatedEvent);
        expect(e).toEqual({ ...key, metadata: { b: "2" }, expiresAt: T0 + 5_000_000, updatedAt: T0 + 2 });

        const cleared = await store.updateKey(key.customerId, key.id, { expiresAt: null, updatedAt: T0 + 3 }, updatedEvent);
        expect(cleared).toEqual({ ...key, metadata: { b: "2" }, expiresAt: null, updatedAt: T0 + 3 });

        const all = await store.updateKey(
          key.customerId,
          key.id,
          { name: "n2", metadata: {}, expiresAt: T0 + 7, updatedAt: T0 + 4 },
          updatedEvent,
        );
        expect(all).toEqual({ ...key, name: "n2", metadata: {}, expiresAt: T0 + 7, updatedAt: T0 + 4 });
        expect(await store.findKey(key.customerId, key.id)).toEqual(all);
        expect(await store.listAuditEvents(auditQuery({ customerId: key.customerId, action: "api_key.updated" }))).toHaveLength(4);
      });

      it("returns null and writes nothing for a missing key or another customer's key", async () => {
        const key = keyRecord();
        await store.insertKey(key, issuedEvent(key));
        expect(await store.updateKey(key.customerId, keyId(), { name: "x", updatedAt: T0 + 1 }, updatedEvent)).toBeNull();
        expect(await store.updateKey(randomUUID(), key.id, { name: "x", updatedAt: T0 + 1 }, updatedEvent)).toBeNull();
        expect(await store.findKey(key.customerId, key.id)).toEqual(key);
        const events = await store.listAuditEvents(auditQuery({ customerId: null, action: "api_key.updated" }));
        expect(events).toEqual([]);
      });
    });

    describe("revokeKey", () => {
      it("sets revokedAt once: changed true then false, the event only the first time", async () => {
        const key = keyRecord();
        await store.insertKey(key, issuedEvent(key));

        const build = (k: KeyRecord) => revokedEvent(k);
        const first = await store.revokeKey(key.customerId, key.id, T0 + 100, build);
        expect(first?.changed).toBe(true);
        expect(first?.key.revokedAt).toBe(T0 + 100);
        expect(first?.key.id).toBe(key.id);

        const second = await store.revokeKey(key.customerId, key.id, T0 + 200, build);
        expect(second?.changed).toBe(false);
        expect(second?.key.revokedAt).toBe(T0 + 100);

        expect((await store.findKey(key.customerId, key.id))?.revokedAt).toBe(T0 + 100);
        const events = await store.listAuditEvents(auditQuery({ customerId: key.customerId, action: "api_key.revoked" }));
        expect(events).toHaveLength(1);
        expect(events[0]!.target?.keyId).toBe(key.id);
      });

      it("the event is built from the revoked key", async () => {
        const key = keyRecord();
        await store.insertKey(key, issuedEvent(key));
        let seen: KeyRecord | null = null;
        await store.revokeKey(key.customerId, key.id, T0 + 100, (k) => {
          seen = k;
          return revokedEvent(k);
        });
        expect(seen).not.toBeNull();
        expect(seen!.id).toBe(key.id);
        expect(seen!.revokedAt).toBe(T0 + 100);
      });

      it("returns null for a missing key or another customer's key, and revokes nothing", async () => {
        const key = keyRecord();
        await store.insertKey(key, issuedEvent(key));
        expect(await store.revokeKey(key.customerId, keyId(), T0 + 1, revokedEvent)).toBeNull();
        expect(await store.revokeKey(randomUUID(), key.id, T0 + 1, revokedEvent)).toBeNull();
        expect((await store.findKey(key.customerId, key.id))?.revokedAt).toBeNull();
        expect(await store.listAuditEvents(auditQuery({ customerId: null, action: "api_key.revoked" }))).toEqual([]);
      });
    });

    describe("changedKeyDigests", () => {
      it("returns the digests of keys issued, updated or revoked at or after the time, and not usage", async () => {
        const customer = randomUUID();
        const old = keyRecord({ customerId: customer, createdAt: T0, updatedAt: T0 });
        const updated = keyRecord({ customerId: customer, createdAt: T0, updatedAt: T0 });
        const revoked = keyRecord({ customerId: customer, createdAt: T0, updatedAt: T0 });
        const fresh = keyRecord({ customerId: customer, createdAt: T0 + 10_000, updatedAt: T0 + 10_000 });
        for (const k of [old, updated, revoked, fresh]) await store.insertKey(k, issuedEvent(k));
        await store.updateKey(customer, updated.id, { name: "renamed", updatedAt: T0 + 10_000 }, updatedEvent);
        await store.revokeKey(customer, revoked.id, T0 + 12_000, revokedEvent);
        await store.recordUsage([{ keyId: old.id, lastUsedAt: T0 + 20_000, count: 3 }]);

        expect((await store.changedKeyDigests(T0 + 10_000)).sort()).toEqual([updated.digest, revoked.digest, fresh.digest].sort());
        expect(await store.changedKeyDigests(T0 + 12_000)).toEqual([revoked.digest]);
        expect(await store.changedKeyDigests(T0 + 12_001)).toEqual([]);
        expect((await store.changedKeyDigests(T0)).length).toBe(4);
      });
    });

    describe("recordUsage", () => {
      it("adds counts and keeps the latest lastUsedAt, whatever order the deltas arrive in", async () => {
        const fresh = keyRecord();
        const used = keyRecord({ lastUsedAt: T0 + 9_000, totalRequests: 10 });
        const untouched = keyRecord({ lastUsedAt: T0 + 1, totalRequests: 3 });
        for (const k of [fresh, used, untouched]) await store.insertKey(k, issuedEvent(k));

        await store.recordUsage([
          { keyId: fresh.id, lastUsedAt: T0 + 5_000, count: 3 },
          { keyId: fresh.id, lastUsedAt: T0 + 2_000, count: 2 },
          { keyId: used.id, lastUsedAt: T0 + 1_000, count: 1 },
        ]);
        await store.recordUsage([{ keyId: fresh.id, lastUsedAt: T0 + 3_000, count: 4 }]);
        await store.recordUsage([]);

        const f = await store.findKey(fresh.customerId, fresh.id);
        expect(f?.totalRequests).toBe(9);
        expect(f?.lastUsedAt).toBe(T0 + 5_000);
        const u = await store.findKey(used.customerId, used.id);
        expect(u?.totalRequests).toBe(11);
        expect(u?.lastUsedAt).toBe(T0 + 9_000);
        expect(await store.findKey(untouched.customerId, untouched.id)).toEqual(untouched);

        await store.recordUsage([{ keyId: used.id, lastUsedAt: T0 + 20_000, count: 1 }]);
        const u2 = await store.findKey(used.customerId, used.id);
        expect(u2?.totalRequests).toBe(12);
        expect(u2?.lastUsedAt).toBe(T0 + 20_000);
        // the rest of the record is unchanged
        expect(u2).toEqual({ ...used, totalRequests: 12, lastUsedAt: T0 + 20_000 });
      });
    });

    describe("audit events", () => {
      const A = randomUUID();
      const B = randomUUID();
      const targetX = keyId();
      const targetY = keyId();
      /** 10 events of customer A one second apart, one of B, one with no customer; ids in time order. */
      function fixture(): AuditEvent[] {
        const events: AuditEvent[] = [];
        for (let i = 0; i < 10; i++) {
          events.push(
            auditEvent({
              customerId: A,
              time: T0 + i * 1000,
              action: i % 3 === 0 ? "auth.failed" : "api_key.updated",
              target: { keyId: i % 2 === 0 ? targetX : targetY, prefix: "zpk_live_abcdefgh", name: `k${i}` },
            }),
          );
        }
        events.push(auditEvent({ customerId: B, time: T0 + 4500, action: "auth.failed", target: { keyId: targetX, prefix: "p", name: "n" } }));
        events.push(auditEvent({ customerId: null, time: T0 + 5500, action: "auth.failed", target: null, reason: "malformed", count: 17 }));
        return events;
      }
      const ids = (es: AuditEvent[]) => es.map((e) => e.id);

      it("round-trips every field and lists newest (highest id) first", async () => {
        const events = fixture();
        const rich = auditEvent({
          customerId: A,
          action: "auth.failed",
          actor: { type: "key", keyId: targetX, prefix: "zpk_live_abcdefgh" },
          target: { keyId: targetX, prefix: "zpk_live_abcdefgh", name: "ünïcode name" },
          outcome: "failure",
          reason: "revoked",
          ip: "2001:db8::1",
          userAgent: "curl/8.5.0",
          requestId: "req-123",
          time: T0 + 20_000,
          count: 3,
          instanceId: randomUUID(),
        });
        await store.appendAuditEvents(shuffle([...events]));
        await store.appendAuditEvents([rich]);
        await store.appendAuditEvents([]);

        const all = await store.listAuditEvents(auditQuery({ customerId: null }));
        expect(ids(all)).toEqual(idsDesc([...events, rich]));
        expect(all[0]).toEqual(rich);
        expect(all.find((e) => e.customerId === null)).toEqual(events[11]);
      });

      it("customerId selects one customer's events; null selects every event, customer-less ones included", async () => {
        const events = fixture();
        await store.appendAuditEvents(events);
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A })))).toEqual(idsDesc(events.slice(0, 10)));
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: B })))).toEqual([events[10]!.id]);
        expect(await store.listAuditEvents(auditQuery({ customerId: randomUUID() }))).toEqual([]);
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: null })))).toEqual(idsDesc(events));
      });

      it("action and targetId filters", async () => {
        const events = fixture();
        await store.appendAuditEvents(events);
        const a = events.slice(0, 10);
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, action: "auth.failed" })))).toEqual(
          idsDesc(a.filter((e) => e.action === "auth.failed")),
        );
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, targetId: targetY })))).toEqual(
          idsDesc(a.filter((e) => e.target?.keyId === targetY)),
        );
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: null, targetId: targetX })))).toEqual(
          idsDesc(events.filter((e) => e.target?.keyId === targetX)),
        );
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, action: "auth.failed", targetId: targetX })))).toEqual(
          idsDesc(a.filter((e) => e.action === "auth.failed" && e.target?.keyId === targetX)),
        );
        expect(await store.listAuditEvents(auditQuery({ customerId: A, action: "api_key.revoked" }))).toEqual([]);
      });

      it("since is inclusive, until is exclusive", async () => {
        const events = fixture();
        await store.appendAuditEvents(events);
        const a = events.slice(0, 10);
        // since = time of event 3 includes event 3; until = time of event 7 excludes event 7
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, since: T0 + 3000 })))).toEqual(idsDesc(a.slice(3)));
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, until: T0 + 7000 })))).toEqual(idsDesc(a.slice(0, 7)));
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, since: T0 + 3000, until: T0 + 7000 })))).toEqual(
          idsDesc(a.slice(3, 7)),
        );
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, since: T0 + 2500, until: T0 + 3001 })))).toEqual([a[3]!.id]);
        expect(await store.listAuditEvents(auditQuery({ customerId: A, since: T0 + 3000, until: T0 + 3000 }))).toEqual([]);
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: null, since: T0 + 4500, until: T0 + 5501 })))).toEqual(
          idsDesc(events.filter((e) => e.time >= T0 + 4500 && e.time < T0 + 5501)),
        );
      });

      it("instanceId selects the events about keys bound to that instance, in the query: pages stay full and exact", async () => {
        // 30 events of customer A: every third about instance I1, the others about I2 or no instance.
        const I1 = randomUUID();
        const I2 = randomUUID();
        const events = Array.from({ length: 30 }, (_, i) =>
          auditEvent({ customerId: A, time: T0 + i, instanceId: i % 3 === 0 ? I1 : i % 3 === 1 ? I2 : null }),
        );
        const otherCustomer = auditEvent({ customerId: B, time: T0 + 40, instanceId: I1 });
        await store.appendAuditEvents(shuffle([...events, otherCustomer]));
        const ofI1 = idsDesc(events.filter((e) => e.instanceId === I1));
        expect(ofI1).toHaveLength(10);
        // Pages of 3: each full until the last, no gaps, nothing of I2, no instance or customer B.
        const seen: string[] = [];
        let beforeId: string | null = null;
        for (let i = 0; i < 10; i++) {
          const page: AuditEvent[] = await store.listAuditEvents(auditQuery({ customerId: A, instanceId: I1, beforeId, limit: 3 }));
          if (page.length === 0) break;
          for (const e of page) expect(e.instanceId).toBe(I1);
          if (seen.length + page.length < ofI1.length) expect(page).toHaveLength(3);
          seen.push(...ids(page));
          beforeId = page[page.length - 1]!.id;
        }
        expect(seen).toEqual(ofI1);
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, instanceId: I2 })))).toEqual(
          idsDesc(events.filter((e) => e.instanceId === I2)),
        );
        expect(await store.listAuditEvents(auditQuery({ customerId: A, instanceId: randomUUID() }))).toEqual([]);
        expect(await store.listAuditEvents(auditQuery({ customerId: A }))).toHaveLength(30);
      });

      it("purgeFailureEvents deletes at most `limit` failure events older than the cutoff, oldest first, never a success", async () => {
        // 10 failures and 10 successes at T0 + i s; the cutoff T0 + 6 s makes failures 0..5 eligible.
        const failures = Array.from({ length: 10 }, (_, i) => auditEvent({ customerId: A, time: T0 + i * 1000, action: "auth.failed", outcome: "failure", reason: "revoked" }));
        const successes = Array.from({ length: 10 }, (_, i) => auditEvent({ customerId: A, time: T0 + i * 1000 }));
        await store.appendAuditEvents(shuffle([...failures, ...successes]));
        const left = async () => ids(await store.listAuditEvents(auditQuery({ customerId: A })));
        expect(await store.purgeFailureEvents(T0 + 6000, 4)).toBe(4);
        expect(await left()).toEqual(idsDesc([...failures.slice(4), ...successes]));
        expect(await store.purgeFailureEvents(T0 + 6000, 4)).toBe(2);
        expect(await store.purgeFailureEvents(T0 + 6000, 4)).toBe(0);
        expect(await left()).toEqual(idsDesc([...failures.slice(6), ...successes]));
      });

      it("beforeId and limit page through newest first with no duplicates or gaps", async () => {
        const events = fixture();
        await store.appendAuditEvents(shuffle([...events]));
        const a = idsDesc(events.slice(0, 10));
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, limit: 3 })))).toEqual(a.slice(0, 3));
        expect(ids(await store.listAuditEvents(auditQuery({ customerId: A, beforeId: a[2]!, limit: 3 })))).toEqual(a.slice(3, 6));

        const seen: string[] = [];
        let beforeId: string | null = null;
        for (let i = 0; i < 20; i++) {
          const page: AuditEvent[] = await store.listAuditEvents(auditQuery({ customerId: null, beforeId, limit: 5 }));
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(5);
          seen.push(...ids(page));
          beforeId = page[page.length - 1]!.id;
        }
        expect(seen).toEqual(idsDesc(events));

        // everything combined
        const combined = await store.listAuditEvents(
          auditQuery({ customerId: A, action: "api_key.updated", since: T0 + 1000, until: T0 + 9000, beforeId: a[2]!, limit: 2 }),
        );
        const expected = idsDesc(
          events
            .slice(0, 10)
            .filter((e) => e.action === "api_key.updated" && e.time >= T0 + 1000 && e.time < T0 + 9000 && e.id < a[2]!),
        ).slice(0, 2);
        expect(ids(combined)).toEqual(expected);
        expect(expected).toHaveLength(2);
      });
    });

    describe("rate-limit buckets", () => {
      const DEFAULTS: RateLimitPolicy = { capacity: 60, refillPerSecond: 1 };

      /** A decide with no clock: takes one token if there is one. Pure, so a store may retry it. */
      const takeOne = (at: number) => (state: BucketState | null, policy: RateLimitPolicy) => {
        const tokens = state ? state.tokens : policy.capacity;
        const allowed = tokens >= 1;
        const next = { tokens: allowed ? tokens - 1 : tokens, at };
        return { next, decision: decision(allowed, policy, next.tokens) };
      };

      it("the first call sees no state and the defaults; the next state persists for the next call", async () => {
        const customer = randomUUID();
        const calls: Array<[BucketState | null, RateLimitPolicy]> = [];
        const d1 = decision(true, DEFAULTS, 59.5);
        const out1 = await store.updateBucket(customer, DEFAULTS, (state, policy) => {
          calls.push([state, policy]);
          return { next: { tokens: 59.5, at: T0 + 123 }, decision: d1 };
        });
        expect(out1).toEqual(d1);
        expect(calls[0]).toEqual([null, DEFAULTS]);

        calls.length = 0;
        const d2 = decision(false, DEFAULTS, 12.25);
        const out2 = await store.updateBucket(customer, DEFAULTS, (state, policy) => {
          calls.push([state, policy]);
          return { next: { tokens: 12.25, at: T0 + 456 }, decision: d2 };
        });
        expect(out2).toEqual(d2);
        expect(calls[calls.length - 1]).toEqual([{ tokens: 59.5, at: T0 + 123 }, DEFAULTS]);

        calls.length = 0;
        await store.updateBucket(customer, DEFAULTS, (state, policy) => {
          calls.push([state, policy]);
          return { next: state!, decision: d2 };
        });
        expect(calls[calls.length - 1]![0]).toEqual({ tokens: 12.25, at: T0 + 456 });

        // another customer's bucket is separate
        calls.length = 0;
        await store.updateBucket(randomUUID(), DEFAULTS, (state, policy) => {
          calls.push([state, policy]);
          return { next: { tokens: 1, at: T0 }, decision: d1 };
        });
        expect(calls[0]).toEqual([null, DEFAULTS]);
      });

      it("the defaults are those passed on each call when there is no override", async () => {
        const customer = randomUUID();
        const seen: RateLimitPolicy[] = [];
        const other: RateLimitPolicy = { capacity: 5, refillPerSecond: 0.5 };
        await store.updateBucket(customer, DEFAULTS, (s, p) => (seen.push(p), takeOne(T0)(s, p)));
        await store.updateBucket(customer, other, (s, p) => (seen.push(p), takeOne(T0)(s, p)));
        expect(seen[0]).toEqual(DEFAULTS);
        expect(seen[seen.length - 1]).toEqual(other);
      });

      it("a decide that throws rejects with its error and leaves the state unchanged", async () => {
        const customer = randomUUID();
        const boom = new Error("cost exceeds capacity");

        // on a customer with no bucket yet
        await expect(store.updateBucket(customer, DEFAULTS, () => { throw boom; })).rejects.toBe(boom);
        let seen: BucketState | null | undefined;
        await store.updateBucket(customer, DEFAULTS, (state, policy) => {
          seen = state;
          return { next: { tokens: 42, at: T0 + 1 }, decision: decision(true, policy, 42) };
        });
        expect(seen).toBeNull();

        // on an existing bucket
        await expect(store.updateBucket(customer, DEFAULTS, () => { throw boom; })).rejects.toBe(boom);
        await store.updateBucket(customer, DEFAULTS, (state, policy) => {
          seen = state;
          return { next: state!, decision: decision(true, policy, 42) };
        });
        expect(seen).toEqual({ tokens: 42, at: T0 + 1 });
      });

      /**
       * 50 updates from 5 concurrent callers, each waiting for its previous one: how the domain
       * calls a store (one step per customer at a time in a process, bucket-steps.ts), with the
       * callers standing for 5 processes or replicas.
       */
      const fromFiveProcesses = async <T,>(update: () => Promise<T>): Promise<T[]> => {
        const results: T[] = [];
        await Promise.all(
          Array.from({ length: 5 }, async () => {
            for (let i = 0; i < 10; i++) results.push(await update());
          }),
        );
        return results;
      };

      it("50 updates from concurrent callers never lose one: every token is spent exactly once", async () => {
        const small = randomUUID();
        const policy: RateLimitPolicy = { capacity: 30, refillPerSecond: 1 };
        const results = await fromFiveProcesses(() => store.updateBucket(small, policy, takeOne(T0)));
        expect(results.filter((r) => r.allowed)).toHaveLength(30);
        expect(results.filter((r) => !r.allowed)).toHaveLength(20);

        const big = randomUUID();
        const bigPolicy: RateLimitPolicy = { capacity: 100, refillPerSecond: 1 };
        const bigResults = await fromFiveProcesses(() => store.updateBucket(big, bigPolicy, takeOne(T0)));
        expect(bigResults.every((r) => r.allowed)).toBe(true);
        let final: BucketState | null = null;
        await store.updateBucket(big, bigPolicy, (state, p) => {
          final = state;
          return { next: state!, decision: decision(true, p, state!.tokens) };
        });
        expect(final).toEqual({ tokens: 50, at: T0 });
        // the distinct remaining counts show no two calls saw the same state
        expect(new Set(bigResults.map((r) => r.remaining)).size).toBe(50);
      });

      it("setRateLimitPolicy overrides the defaults in updateBucket, for that customer only", async () => {
        const customer = randomUUID();
        const other = randomUUID();

        // a bucket that exists before the policy is set
        await store.updateBucket(customer, DEFAULTS, takeOne(T0));

        const raised: RateLimitPolicy = { capacity: 500, refillPerSecond: 2.5 };
        await store.setRateLimitPolicy(customer, raised);

        const seen: RateLimitPolicy[] = [];
        for (let i = 0; i < 3; i++) {
          await store.updateBucket(customer, DEFAULTS, (s, p) => (seen.push(p), takeOne(T0)(s, p)));
        }
        expect(seen.length).toBeGreaterThanOrEqual(3);
        for (const p of seen) expect(p).toEqual(raised);

        const seenOther: RateLimitPolicy[] = [];
        await store.updateBucket(other, DEFAULTS, (s, p) => (seenOther.push(p), takeOne(T0)(s, p)));
        expect(seenOther[0]).toEqual(DEFAULTS);

        const lowered: RateLimitPolicy = { capacity: 7, refillPerSecond: 0.1 };
        await store.setRateLimitPolicy(customer, lowered);
        const seenAfter: RateLimitPolicy[] = [];
        await store.updateBucket(customer, DEFAULTS, (s, p) => (seenAfter.push(p), takeOne(T0)(s, p)));
        expect(seenAfter[seenAfter.length - 1]).toEqual(lowered);
      });

      it("a policy can be set for a customer that never had a bucket, which then starts from no state", async () => {
        const customer = randomUUID();
        const policy: RateLimitPolicy = { capacity: 1000, refillPerSecond: 10 };
        await store.setRateLimitPolicy(customer, policy);
        const calls: Array<[BucketState | null, RateLimitPolicy]> = [];
        await store.updateBucket(customer, DEFAULTS, (s, p) => (calls.push([s, p]), takeOne(T0)(s, p)));
        expect(calls[0]).toEqual([null, policy]);
      });
    });

    it("ping resolves", async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Record factories

/** A fixed point in time for every record (epoch ms), far from "now" so nothing depends on the clock. */
export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

const ulid = monotonicFactory();
/** `key_` + ULID: increasing in creation order, so "newest first" is the reverse of creation. */
export const keyId = () => `key_${ulid()}`;
/** `evt_` + ULID. */
export const eventId = () => `evt_${ulid()}`;
const digest = () => createHash("sha256").update(randomBytes(32)).digest("hex");

export function keyRecord(over: Partial<KeyRecord> = {}): KeyRecord {
  const random = randomBytes(6).toString("base64url");
  return {
    id: keyId(),
    customerId: randomUUID(),
    instanceId: null,
    name: "key",
    prefix: `zpk_live_${random}`,
    environment: "live",
    scopes: [],
    metadata: {},
    digest: digest(),
    lastUsedAt: null,
    totalRequests: 0,
    expiresAt: null,
    createdAt: T0,
    updatedAt: T0,
    revokedAt: null,
    enabled: true,
    rolledFrom: null,
    rolledTo: null,
    predecessorGraceMs: null,
    lastFour: random.slice(-4),
    ...over,
  };
}

export function auditEvent(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: eventId(),
    customerId: randomUUID(),
    action: "api_key.issued",
    actor: { type: "internal", name: "signup" },
    target: null,
    instanceId: null,
    outcome: "success",
    reason: null,
    ip: null,
    userAgent: null,
    requestId: null,
    time: T0,
    count: 1,
    ...over,
  };
}

const eventFor = (action: AuditEvent["action"]) => (k: KeyRecord): AuditEvent =>
  auditEvent({
    customerId: k.customerId,
    action,
    target: { keyId: k.id, prefix: k.prefix, name: k.name },
    time: k.updatedAt,
  });
export const issuedEvent = eventFor("api_key.issued");
export const updatedEvent = eventFor("api_key.updated");
export const revokedEvent = eventFor("api_key.revoked");

function decision(allowed: boolean, policy: RateLimitPolicy, tokens: number): RateLimitDecision {
  return {
    allowed,
    limit: policy.capacity,
    remaining: Math.floor(tokens),
    retryAfterSeconds: allowed ? 0 : 1,
    resetAt: T0 + 1000,
  };
}

export function listQuery(over: Partial<KeyListQuery> & { customerId: string }): KeyListQuery {
  return { instanceId: null, includeInactive: false, now: T0, beforeId: null, limit: 100, ...over };
}

export function auditQuery(over: Partial<AuditQuery> & { customerId: string | null }): AuditQuery {
  return { instanceId: null, action: null, targetId: null, since: null, until: null, beforeId: null, limit: 100, ...over };
}

/** Ids of `records`, highest first: the order every list must return. */
function idsDesc(records: Array<{ id: string }>): string[] {
  return records.map((r) => r.id).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
