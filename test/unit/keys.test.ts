import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/domain/errors.js";
import { INTERNAL, unitService } from "../helpers/unit-service.js";

/**
 * Key management rules (SPEC §2, §3) through the one ServiceImpl, called directly as a transport
 * calls it, over the in-memory store: caller → request fields → domain → response message.
 */
const codeOf = (e: { cause?: unknown }) => (e.cause instanceof ApiError ? e.cause.code : "not an ApiError");

describe("issuing a key", () => {
  it("answers the secret once, in the key format, and stores only its digest", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key, secret } = await s.issue(customer, { name: "billing", environment: "test", scopes: ["orders:read"] });
    expect(secret).toMatch(/^zpk_test_[A-Za-z0-9_-]{43}[A-Za-z0-9_-]{6}$/);
    expect(key).toMatchObject({ customerId: customer, name: "billing", environment: "test", scopes: ["orders:read"], isActive: true });
    expect(secret.startsWith(key.prefix)).toBe(true);
    const stored = await s.store.findKey(customer, key.id);
    expect(JSON.stringify(stored)).not.toContain(secret);
    const { res } = await s.call("getKey", { customerId: customer, id: key.id }, INTERNAL);
    expect(JSON.stringify(res, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(secret);
  });

  it("is written with its api_key.issued event, naming the actor and the request's origin", async () => {
    const s = unitService();
    const customer = randomUUID();
    await s.call("issueKey", { customerId: customer, name: "a" }, INTERNAL, { "x-caller": "signup", "x-request-id": "req-1", "user-agent": "ua/1" });
    const [event] = s.store.auditEvents();
    expect(event).toMatchObject({
      customerId: customer, action: "api_key.issued", outcome: "success",
      actor: { type: "internal", name: "signup" }, requestId: "req-1", userAgent: "ua/1", ip: "127.0.0.9",
    });
  });

  it("refuses bad fields with invalid_argument naming the field, and writes nothing", async () => {
    const s = unitService();
    const customer = randomUUID();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: "" }, /name/],
      [{ name: "x".repeat(129) }, /name/],
      [{ name: "a", environment: "staging" }, /environment/],
      [{ name: "a", instanceId: "not-a-uuid" }, /instance_id/],
      [{ name: "a", scopes: ["bad scope"] }, /scopes/],
      [{ name: "a", expiresAt: timestampFromMs(s.clock.ms - 1) }, /expires_at/],
      [{ name: "a", metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"])) }, /metadata/],
    ];
    for (const [fields, message] of cases) {
      const e = await s.failure("issueKey", { customerId: customer, ...fields }, INTERNAL);
      expect(e.code, Object.keys(fields).join(",")).toBe(Code.InvalidArgument);
      expect(e.rawMessage).toMatch(message);
    }
    expect(s.store.auditEvents()).toEqual([]);
  });

  it("an internal caller must name the customer; a bad customer_id is invalid_argument", async () => {
    const s = unitService();
    expect(codeOf(await s.failure("issueKey", { name: "a" }, INTERNAL))).toBe("invalid_argument");
    expect(codeOf(await s.failure("issueKey", { customerId: "nope", name: "a" }, INTERNAL))).toBe("invalid_argument");
  });

  it("customer ids are case-insensitive: one customer whatever the case", async () => {
    const s = unitService();
    const customer = randomUUID();
    await s.issue(customer.toUpperCase());
    const { res } = await s.call("listKeys", { customerId: customer }, INTERNAL);
    expect(res.data).toHaveLength(1);
    expect(res.data[0]!.customerId).toBe(customer);
  });
});

describe("listing keys", () => {
  it("pages newest first through every key once, and hides revoked and expired keys unless asked", async () => {
    const s = unitService();
    const customer = randomUUID();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await s.issue(customer, { name: `k${i}` })).key.id);
    await s.issue(randomUUID()); // another customer's
    const seen: string[] = [];
    let pageToken = "";
    do {
      const { res } = await s.call("listKeys", { customerId: customer, pageSize: 3, pageToken }, INTERNAL);
      seen.push(...res.data.map((k) => k.id));
      pageToken = res.nextPageToken ?? "";
    } while (pageToken);
    expect(seen).toEqual([...ids].reverse());

    await s.call("revokeKey", { customerId: customer, id: ids[0]! }, INTERNAL);
    await s.call("updateKey", { customerId: customer, id: ids[1]!, expiresAt: timestampFromMs(s.clock.ms + 1000) }, INTERNAL);
    s.clock.advance(1000);
    const active = (await s.call("listKeys", { customerId: customer }, INTERNAL)).res.data;
    expect(active.map((k) => k.id)).toEqual(ids.slice(2).reverse());
    const all = (await s.call("listKeys", { customerId: customer, includeInactive: true }, INTERNAL)).res.data;
    expect(all).toHaveLength(7);
    expect(all.filter((k) => !k.isActive).map((k) => k.id).sort()).toEqual(ids.slice(0, 2).sort());
  });

  it("a page token that is not ours, and a page size over 100, are invalid_argument", async () => {
    const s = unitService();
    const customer = randomUUID();
    expect(codeOf(await s.failure("listKeys", { customerId: customer, pageToken: "garbage" }, INTERNAL))).toBe("invalid_argument");
    expect(codeOf(await s.failure("listKeys", { customerId: customer, pageSize: 101 }, INTERNAL))).toBe("invalid_argument");
  });
});

describe("updating a key", () => {
  it("changes only the fields in the update mask (or the fields set), and audits the change", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key } = await s.issue(customer, { name: "old", metadata: { team: "a" }, scopes: ["x:y"] });
    const { res } = await s.call(
      "updateKey",
      { customerId: customer, id: key.id, name: "new", metadata: { team: "b" }, updateMask: { paths: ["name"] } },
      INTERNAL,
    );
    expect(res.key).toMatchObject({ name: "new", metadata: { team: "a" }, scopes: ["x:y"] });
    const second = await s.call("updateKey", { customerId: customer, id: key.id, metadata: { team: "c" } }, INTERNAL);
    expect(second.res.key).toMatchObject({ name: "new", metadata: { team: "c" } });
    expect(s.store.auditEvents().filter((e) => e.action === "api_key.updated")).toHaveLength(2);
  });

  it("scopes and the instance binding cannot be changed", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key } = await s.issue(customer);
    for (const path of ["scopes", "instance_id"]) {
      const e = await s.failure("updateKey", { customerId: customer, id: key.id, updateMask: { paths: [path] } }, INTERNAL);
      expect(codeOf(e)).toBe("invalid_argument");
      expect(e.rawMessage).toContain(path);
    }
  });

  it("expires_at can be set and cleared; a key whose expiry has passed stops authenticating", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key, secret } = await s.issue(customer);
    await s.call("updateKey", { customerId: customer, id: key.id, expiresAt: timestampFromMs(s.clock.ms + 5000) }, INTERNAL);
    await s.call("updateKey", { customerId: customer, id: key.id, updateMask: { paths: ["expires_at"] } }, INTERNAL);
    s.clock.advance(10_000);
    expect((await s.call("authenticate", { key: secret }, INTERNAL)).res.valid).toBe(true);
    await s.call("updateKey", { customerId: customer, id: key.id, expiresAt: timestampFromMs(s.clock.ms + 5000) }, INTERNAL);
    s.clock.advance(5000);
    const { res } = await s.call("authenticate", { key: secret }, INTERNAL);
    expect(res.valid).toBe(false);
  });

  it("an unknown or malformed id is not_found", async () => {
    const s = unitService();
    const customer = randomUUID();
    expect(codeOf(await s.failure("updateKey", { customerId: customer, id: "key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B", name: "x" }, INTERNAL))).toBe("not_found");
    expect(codeOf(await s.failure("getKey", { customerId: customer, id: "../etc" }, INTERNAL))).toBe("not_found");
  });
});

describe("revoking a key", () => {
  it("takes effect at once for authentication and for the revoked key's own calls", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key, secret, bearer } = await s.issue(customer);
    expect((await s.call("listKeys", {}, bearer)).res.data).toHaveLength(1); // the key's cache entry is warm
    await s.call("revokeKey", { customerId: customer, id: key.id }, INTERNAL);
    const auth = (await s.call("authenticate", { key: secret }, INTERNAL)).res;
    expect(auth.valid).toBe(false);
    expect(codeOf(await s.failure("listKeys", {}, bearer))).toBe("key_revoked");
  });

  it("is idempotent: a second revoke answers the same key and writes no second event", async () => {
    const s = unitService();
    const customer = randomUUID();
    const { key } = await s.issue(customer);
    const first = (await s.call("revokeKey", { customerId: customer, id: key.id }, INTERNAL)).res.key!;
    s.clock.advance(1000);
    const second = (await s.call("revokeKey", { customerId: customer, id: key.id }, INTERNAL)).res.key!;
    expect(second.revokedAt).toEqual(first.revokedAt);
    expect(second.isActive).toBe(false);
    expect(s.store.auditEvents().filter((e) => e.action === "api_key.revoked")).toHaveLength(1);
  });
});
