import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/domain/errors.js";
import type { IdempotencyRecord, Store } from "../../src/domain/store.js";
import { auditQuery, issuedEvent, keyRecord, listQuery, T0 } from "./store-contract.js";

/**
 * The Store methods of issue 13 (key lifecycle), part of the shared contract: every store runs
 * these through describeStoreContract. `store()` is the fresh, empty store of the current test.
 */
export function describeLifecycleContract(store: () => Store): void {
  describe("lifecycle (issue 13)", () => {
    it("insertKeys stores every key and event; a duplicate digest writes none of the batch", async () => {
      const customer = randomUUID();
      const existing = keyRecord({ customerId: customer });
      await store().insertKeys([existing], [issuedEvent(existing)]);
      const batch = Array.from({ length: 30 }, () => keyRecord({ customerId: customer }));
      await store().insertKeys(batch, batch.map(issuedEvent));
      expect(await store().countKeys(listQuery({ customerId: customer }))).toBe(31);
      for (const k of batch) expect(await store().findKeyByDigest(k.digest)).toEqual(k);
      expect(await store().listAuditEvents(auditQuery({ customerId: customer }))).toHaveLength(31);

      const other = randomUUID();
      const bad = [...Array.from({ length: 29 }, () => keyRecord({ customerId: other })), keyRecord({ customerId: other, digest: existing.digest })];
      const err = await store().insertKeys(bad, bad.map(issuedEvent)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe("already_exists");
      expect(await store().countKeys(listQuery({ customerId: other }))).toBe(0);
      expect(await store().listKeys(listQuery({ customerId: other }))).toEqual([]);
      expect(await store().findKeyByDigest(bad[0]!.digest)).toBeNull();
      expect(await store().findKey(other, bad[0]!.id)).toBeNull();
      expect(await store().listAuditEvents(auditQuery({ customerId: other }))).toEqual([]);
    });

    it("rollKey links both keys, sets the old expiry, and refuses a second roll writing nothing", async () => {
      const customer = randomUUID();
      const old = keyRecord({ customerId: customer, scopes: ["a"] });
      await store().insertKey(old, issuedEvent(old));
      const successor = keyRecord({ customerId: customer, scopes: ["a"], rolledFrom: old.id, createdAt: T0 + 10, updatedAt: T0 + 10 });
      const ok = await store().rollKey(successor, { expectExpiresAt: null, expiresAt: T0 + 5000, updatedAt: T0 + 10 }, [issuedEvent(successor)]);
      expect(ok).toBe(true);
      expect(await store().findKey(customer, old.id)).toMatchObject({ rolledTo: successor.id, expiresAt: T0 + 5000, updatedAt: T0 + 10 });
      expect(await store().findKeyByDigest(successor.digest)).toEqual(successor);

      const again = keyRecord({ customerId: customer, rolledFrom: old.id });
      expect(await store().rollKey(again, { expectExpiresAt: T0 + 5000, expiresAt: T0 + 4000, updatedAt: T0 + 20 }, [issuedEvent(again)])).toBe(false);
      expect(await store().findKeyByDigest(again.digest)).toBeNull();
      expect(await store().findKey(customer, again.id)).toBeNull();
      expect(await store().findKey(customer, old.id)).toMatchObject({ rolledTo: successor.id, expiresAt: T0 + 5000 });
    });

    it("rollKey refuses a revoked key, or one whose expiry changed since it was read", async () => {
      const customer = randomUUID();
      const revoked = keyRecord({ customerId: customer, revokedAt: T0 });
      const moved = keyRecord({ customerId: customer, expiresAt: T0 + 100 });
      await store().insertKeys([revoked, moved], []);
      const a = keyRecord({ customerId: customer, rolledFrom: revoked.id });
      const b = keyRecord({ customerId: customer, rolledFrom: moved.id });
      expect(await store().rollKey(a, { expectExpiresAt: null, expiresAt: null, updatedAt: T0 + 1 }, [])).toBe(false);
      expect(await store().rollKey(b, { expectExpiresAt: null, expiresAt: null, updatedAt: T0 + 1 }, [])).toBe(false);
      expect(await store().countKeys(listQuery({ customerId: customer, includeInactive: true }))).toBe(2);
    });

    it("startPredecessorGrace cuts the predecessor off at min(its expiry, at + grace), once", async () => {
      const customer = randomUUID();
      const old = keyRecord({ customerId: customer, expiresAt: T0 + 1_000_000 });
      await store().insertKey(old, issuedEvent(old));
      const successor = keyRecord({ customerId: customer, rolledFrom: old.id, predecessorGraceMs: 60_000 });
      await store().rollKey(successor, { expectExpiresAt: old.expiresAt, expiresAt: old.expiresAt, updatedAt: T0 + 1 }, []);
      expect(await store().startPredecessorGrace(successor, T0 + 500)).toBe(true);
      expect((await store().findKey(customer, old.id))!.expiresAt).toBe(T0 + 60_500);
      const after = (await store().findKeyByDigest(successor.digest))!;
      expect(after.predecessorGraceMs).toBeNull();
      expect(after.updatedAt).toBe(T0 + 500);
      // A repeat (another process with a stale copy) changes nothing.
      expect(await store().startPredecessorGrace(successor, T0 + 9000)).toBe(false);
      expect((await store().findKey(customer, old.id))!.expiresAt).toBe(T0 + 60_500);
      expect(await store().changedKeyDigests(T0 + 400)).toEqual(expect.arrayContaining([old.digest, successor.digest]));

      // Never extends: a predecessor expiring sooner keeps its expiry.
      const soon = keyRecord({ customerId: customer, expiresAt: T0 + 100 });
      await store().insertKey(soon, issuedEvent(soon));
      const s2 = keyRecord({ customerId: customer, rolledFrom: soon.id, predecessorGraceMs: 60_000 });
      await store().rollKey(s2, { expectExpiresAt: soon.expiresAt, expiresAt: soon.expiresAt, updatedAt: T0 + 1 }, []);
      await store().startPredecessorGrace(s2, T0 + 50);
      expect((await store().findKey(customer, soon.id))!.expiresAt).toBe(T0 + 100);
    });

    it("countKeys and listKeys filter by metadata (AND, any key name) and count the whole filtered set", async () => {
      const customer = randomUUID();
      const keys = [
        keyRecord({ customerId: customer, metadata: { team: "bi", "env name": "prod" } }),
        keyRecord({ customerId: customer, metadata: { team: "bi", "env name": "dev" } }),
        keyRecord({ customerId: customer, metadata: { team: "ops" } }),
        keyRecord({ customerId: customer, metadata: { team: "bi" }, revokedAt: T0 }),
        keyRecord({ customerId: customer, metadata: { team: "bi" }, enabled: false }),
      ];
      await store().insertKeys(keys, []);
      const q = (metadata: Record<string, string>, over = {}) => listQuery({ customerId: customer, metadata, ...over });
      expect(await store().countKeys(q({ team: "bi" }))).toBe(3); // revoked hidden, disabled listed
      expect(await store().countKeys(q({ team: "bi" }, { includeInactive: true }))).toBe(4);
      expect((await store().listKeys(q({ team: "bi", "env name": "prod" }))).map((k) => k.id)).toEqual([keys[0]!.id]);
      expect(await store().countKeys(q({ team: "bi", "env name": "prod" }))).toBe(1);
      expect(await store().countKeys(q({ team: "nobody" }))).toBe(0);
      expect(await store().countKeys(q({}, { limit: 1, beforeId: keys[1]!.id }))).toBe(4);
      expect(await store().countKeys(q({}, { customerId: randomUUID() }))).toBe(0);
    });

    it("updateKey sets enabled and keeps metadata filters in step with new metadata", async () => {
      const customer = randomUUID();
      const key = keyRecord({ customerId: customer, metadata: { team: "a" } });
      await store().insertKey(key, issuedEvent(key));
      await store().updateKey(customer, key.id, { enabled: false, metadata: { team: "b" }, updatedAt: T0 + 5 }, issuedEvent);
      expect(await store().findKeyByDigest(key.digest)).toMatchObject({ enabled: false, metadata: { team: "b" } });
      expect(await store().countKeys(listQuery({ customerId: customer, metadata: { team: "a" } }))).toBe(0);
      expect(await store().countKeys(listQuery({ customerId: customer, metadata: { team: "b" } }))).toBe(1);
      await store().updateKey(customer, key.id, { enabled: true, updatedAt: T0 + 6 }, issuedEvent);
      expect((await store().findKey(customer, key.id))!.enabled).toBe(true);
    });

    it("idempotency records: claim once, owner-checked update and delete, purge of expired", async () => {
      const rec = (over: Partial<IdempotencyRecord> = {}): IdempotencyRecord => ({
        id: randomUUID(), scope: "customer:x", customerId: randomUUID(), paramsDigest: "p", owner: "o1",
        state: "pending", response: null, keyIds: [], createdAt: T0, leaseUntil: T0 + 10, expiresAt: T0 + 100, ...over,
      });
      const a = rec();
      expect(await store().claimIdempotency(a)).toBeNull();
      expect(await store().claimIdempotency({ ...a, owner: "o2", paramsDigest: "q" })).toEqual(a);
      expect(await store().updateIdempotency(a.id, "o2", { state: "done" })).toBe(false);
      const bytes = new Uint8Array([0, 1, 2, 250, 255]);
      expect(await store().updateIdempotency(a.id, "o1", { state: "prepared", response: bytes, keyIds: ["key_1"] })).toBe(true);
      expect(await store().claimIdempotency({ ...a, owner: "o3" })).toEqual({ ...a, state: "prepared", response: bytes, keyIds: ["key_1"] });
      await store().deleteIdempotency(a.id, "o2"); // not the owner: stays
      expect(await store().claimIdempotency({ ...a, owner: "o3" })).not.toBeNull();
      await store().deleteIdempotency(a.id, "o1");
      expect(await store().claimIdempotency({ ...a, owner: "o3" })).toBeNull();

      const old = rec({ expiresAt: T0 + 1 });
      await store().claimIdempotency(old);
      expect(await store().purgeIdempotency(T0 + 2)).toBeGreaterThanOrEqual(1);
      expect(await store().claimIdempotency(old)).toBeNull(); // purged, so claimable again
      expect(await store().claimIdempotency({ ...a, owner: "o9" })).not.toBeNull(); // unexpired kept
    });
  });
}
