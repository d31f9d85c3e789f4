import { randomUUID } from "node:crypto";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { AuditLog } from "../../src/domain/audit-log.js";
import { UsageRecorder } from "../../src/domain/usage-recorder.js";
import { MemoryStore } from "../helpers/memory-store.js";
import { INTERNAL, unitService } from "../helpers/unit-service.js";

/**
 * What the background writers promise (SPEC §2, §7): usage counted in memory and written in one
 * batch, visible before it is written and kept through a storage outage; failure events buffered,
 * floods aggregated with a count and a bounded number of aggregates, nothing lost to an outage.
 */
const log = pino({ level: "silent" });

describe("usage write-behind", () => {
  it("successful authentications are counted in memory, visible at once, and written as one batch", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key, secret } = await s.issue(customer);
    for (let i = 0; i < 5; i++) await s.call("authenticate", { key: secret }, INTERNAL);
    s.clock.advance(10);
    await s.call("authenticate", { key: secret, requiredScopes: [] }, INTERNAL);
    await s.call("authenticate", { key: secret, instanceId: randomUUID() }, INTERNAL); // unbound key: valid too
    expect(s.store.calls.get("recordUsage")).toBeUndefined();
    const { res } = await s.call("getKey", { customerId: customer, id: key.id }, INTERNAL);
    expect(res.key!.totalRequests).toBe(7n);
    expect((await s.store.findKey(customer, key.id))!.totalRequests).toBe(0);
    await s.flush();
    expect(s.store.calls.get("recordUsage")).toBe(1);
    const stored = (await s.store.findKey(customer, key.id))!;
    expect(stored.totalRequests).toBe(7);
    expect(stored.lastUsedAt).toBe(s.clock.ms);
  });

  it("a denied authentication is not counted as use", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key, secret } = await s.issue(customer, { scopes: ["a:b"] });
    await s.call("authenticate", { key: secret, requiredScopes: ["c:d"] }, INTERNAL);
    await s.flush();
    expect((await s.store.findKey(customer, key.id))!.totalRequests).toBe(0);
  });

  it("counts survive a failed write and are added to later ones", async () => {
    const store = new MemoryStore();
    const usage = new UsageRecorder(store, 3_600_000, log);
    const key = { id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B" };
    const issued = { ...baseKey(key.id) };
    await store.insertKey(issued, { ...baseEvent(), target: null });
    usage.record(key.id, 100);
    usage.record(key.id, 300);
    store.failing = true;
    const failed = usage.flush();
    usage.record(key.id, 200); // counted while the failing write is under way
    await failed;
    store.failing = false;
    usage.record(key.id, 250);
    expect(usage.overlay(issued)).toMatchObject({ totalRequests: 4, lastUsedAt: 300 });
    await usage.flush();
    expect(await store.findKey(issued.customerId, key.id)).toMatchObject({ totalRequests: 4, lastUsedAt: 300 });
  });

  it("counts each key's outcomes per hour, across flushes, a failed write and an hour's end", async () => {
    const H = 3_600_000;
    const T = 10 * H;
    const store = new MemoryStore();
    const usage = new UsageRecorder(store, H, log);
    const key = Object.freeze(baseKey("key_01JD3X5Q7R2M9T4V6W8Y0Z1A2C"));
    const other = Object.freeze({ ...baseKey("key_01JD3X5Q7R2M9T4V6W8Y0Z1A2D"), customerId: key.customerId });
    const count = (k: typeof key, outcome: string, at: number, n: number) => {
      for (let i = 0; i < n; i++) usage.recordOutcome(k, outcome, at);
    };
    count(key, "valid", T, 3);
    count(key, "revoked", T + 1, 2);
    count(key, "valid", T + 2, 1); // back to an outcome counted before
    count(other, "valid", T, 4);
    await usage.flush();
    count(key, "valid", T + 3, 5); // after a flush: a new batch
    store.failing = true;
    const failed = usage.flush();
    count(key, "valid", T + 4, 1); // while the failing write is under way
    await failed;
    store.failing = false;
    count(key, "valid", T + H, 2); // the next hour
    await usage.flush();
    const q = { customerId: key.customerId, keyId: key.id, instanceId: null, since: T, until: T + 2 * H };
    expect(await store.hourlyUsage(q)).toEqual([
      { hour: T, outcome: "revoked", count: 2 },
      { hour: T, outcome: "valid", count: 10 },
      { hour: T + H, outcome: "valid", count: 2 },
    ]);
    expect(await store.hourlyUsage({ ...q, keyId: other.id })).toEqual([{ hour: T, outcome: "valid", count: 4 }]);
  });
});

describe("audit log", () => {
  it("a rate-limit flood on one key becomes one rate_limit.exceeded event with the count", async () => {
    const s = unitService({ capacity: 1, refillPerSecond: 0.001 });
    const customer = randomUUID();
    const { key, bearer } = await s.issue(customer);
    await s.call("listKeys", {}, bearer);
    for (let i = 0; i < 25; i++) await s.failure("listKeys", {}, bearer);
    await s.flush();
    const exceeded = s.store.auditEvents().filter((e) => e.action === "rate_limit.exceeded");
    expect(exceeded).toHaveLength(1);
    expect(exceeded[0]).toMatchObject({ customerId: customer, count: 25, reason: "rate_limited", target: { keyId: key.id } });
  });

  it("past the bound on distinct aggregates, the rest fold into one anonymous overflow event: no growth without bound", async () => {
    const store = new MemoryStore();
    const audit = new AuditLog(store, () => 1_000, { flushIntervalMs: 1e9, aggregateIntervalMs: 1e9, failureIntervalMs: 1e9, maxAggregates: 3 }, log);
    for (let i = 0; i < 10; i++) {
      audit.aggregate({ ...baseEvent(), ip: `10.0.0.${i}`, customerId: null });
    }
    expect(audit.depth).toBe(4);
    await audit.flush();
    const events = store.auditEvents();
    expect(events.map((e) => e.count).sort((a, b) => a - b)).toEqual([1, 1, 1, 7]);
    const overflow = events.find((e) => e.count === 7)!;
    expect(overflow).toMatchObject({ ip: null, customerId: null, actor: { type: "anonymous" } });
  });

  it("events buffered during a storage outage are written by the next flush, none lost", async () => {
    const store = new MemoryStore();
    const audit = new AuditLog(store, () => 1_000, { flushIntervalMs: 1e9, aggregateIntervalMs: 1e9, failureIntervalMs: 1e9, maxAggregates: 100 }, log);
    audit.record({ ...baseEvent(), reason: "revoked" });
    audit.aggregate({ ...baseEvent(), reason: "unknown" });
    store.failing = true;
    await audit.flush();
    store.failing = false;
    audit.record({ ...baseEvent(), reason: "expired" });
    await audit.flush();
    expect(store.auditEvents().map((e) => e.reason).sort()).toEqual(["expired", "revoked", "unknown"]);
  });
});

function baseKey(id: string) {
  return {
    id, customerId: randomUUID(), instanceId: null, name: "k", prefix: "zpk_live_abcd1234", environment: "live" as const,
    scopes: [], metadata: {}, digest: randomUUID(), lastUsedAt: null, totalRequests: 0, expiresAt: null,
    createdAt: 0, updatedAt: 0, revokedAt: null, enabled: true, rolledFrom: null, rolledTo: null, predecessorGraceMs: null,
    lastFour: "abcd",
  };
}

function baseEvent() {
  return {
    id: `evt_${randomUUID()}`, customerId: randomUUID() as string | null, action: "auth.failed" as const, actor: { type: "anonymous" as const },
    target: null, instanceId: null, outcome: "failure" as const, reason: "malformed" as string | null, ip: "127.0.0.1" as string | null,
    userAgent: null, requestId: null, time: 1_000, count: 1,
  };
}
