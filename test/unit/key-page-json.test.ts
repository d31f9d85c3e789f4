import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ListKeysResponseSchema } from "../../gen/apikeys/v1/api_key_service_pb.js";
import pino from "pino";
import { keyRecordBytes } from "../../src/domain/key-record-bytes.js";
import type { Store } from "../../src/domain/store.js";
import { UsageRecorder } from "../../src/domain/usage-recorder.js";
import type { KeyRecord } from "../../src/domain/types.js";
import type { KeyListPage } from "../../src/domain/key-manager.js";
import { keyMessage } from "../../src/service/messages.js";
import { listedKeyBytes } from "../../src/storage/sqlite/sqlite-store.js";
import { keyPageJson } from "../../src/transport/rest/key-page-json.js";
import { present } from "../../src/transport/rest/present.js";

/**
 * REST's list page is rendered straight from the records (key-page-json.ts, issue 17); every
 * other route goes through the descriptor-driven `present`. The two must give the same bytes.
 */
const NOW = Date.UTC(2026, 11, 2, 7, 0, 0, 123);

const base: KeyRecord = {
  id: "key_01M8TSH7X1P7Q7K9YZYXDR6066",
  customerId: "3f0c1d2e-0b0e-4c3e-9d2e-6a3c7c4e3f4a",
  instanceId: null,
  name: "plain",
  prefix: "zpk_live_t4aDb41R",
  environment: "live",
  scopes: [],
  metadata: {},
  digest: "d".repeat(64),
  lastUsedAt: null,
  totalRequests: 0,
  expiresAt: null,
  createdAt: NOW - 86_400_000,
  updatedAt: NOW - 1000,
  revokedAt: null,
  enabled: true,
  rolledFrom: null,
  rolledTo: null,
  predecessorGraceMs: null,
  lastFour: "Jg9p",
};

/** Every optional field set, strings JSON must escape, and time edges. */
const full: KeyRecord = {
  ...base,
  id: "key_01M8TSH7WXVPA7364E3MD0ZPAR",
  instanceId: "11111111-2222-4333-8444-555555555555",
  name: 'quoted "name" \\ ✓ \u2028 \u0001 \ud800 emoji 😀',
  environment: "test",
  scopes: ["api_keys:read", "x:y", "ü"],
  metadata: { team: "a", "1": "num", zeta: "ü\n\t", "": "empty", "a\"b": "c" },
  lastUsedAt: NOW - 1,
  totalRequests: 9_007_199_254_740_991,
  expiresAt: 253_402_300_799_999,
  createdAt: 0,
  updatedAt: 951_782_400_000, // 2000-02-29
  revokedAt: NOW - 999,
  enabled: false,
  rolledFrom: "key_01M8TSH7WTR6Z5EPM6YZKNQ1SD",
  rolledTo: "key_01M8TSH7WPGCDJG570SJ7BJ121",
  predecessorGraceMs: 3_600_000,
  lastFour: "",
};

/** The descriptor-driven rendering of the same page, as the REST handler did before. */
function viaPresent(page: KeyListPage): string {
  const msg = create(ListKeysResponseSchema, {
    data: page.items.map((k) => keyMessage(k, page.now)),
    nextPageToken: page.nextPageToken ?? undefined,
    totalSize: page.totalSize,
  });
  return JSON.stringify(present(ListKeysResponseSchema, msg));
}

/** A page of `items`, whose stored records are `stored` (the items themselves unless some carry pending usage). */
const page = (items: KeyRecord[], nextPageToken: string | null = null, totalSize = items.length, stored = items): KeyListPage => ({
  items,
  stored,
  nextPageToken,
  totalSize,
  now: NOW,
});

describe("the REST list page's JSON, built from records", () => {
  it.each([
    ["no keys", page([])],
    ["every optional field unset", page([base])],
    ["every optional field set", page([full])],
    ["both, with a next page", page([full, base, { ...base, expiresAt: NOW - 1 }, { ...base, expiresAt: NOW + 1 }], "a2V5XzAx", 42)],
  ])("equals present()'s: %s", (_, p) => {
    expect(keyPageJson(p).toString()).toBe(viaPresent(p));
  });

  it("renders every timestamp as toISOString does", () => {
    const times = [0, 1, 999, 1000, 59_999, 86_399_999, 86_400_000, 951_782_400_000, 1_709_251_199_999, 4_102_444_800_000, 253_402_300_799_999];
    for (let i = 0; i < 2000; i++) times.push(Math.floor(Math.random() * 253_402_300_800_000));
    for (const ms of times) {
      const p = page([{ ...base, createdAt: ms, updatedAt: ms, lastUsedAt: ms, expiresAt: ms, revokedAt: ms }]);
      expect(keyPageJson(p).toString()).toBe(viaPresent(p));
    }
  });

  it("a frozen record rendered again later is active until its expiry, then not (its JSON is kept, the time is not)", () => {
    const expiring = Object.freeze({ ...full, revokedAt: null, enabled: true, expiresAt: NOW + 1 });
    const at = (now: number): KeyListPage => ({ ...page([expiring]), now });
    const activeAt = (now: number) => (JSON.parse(keyPageJson(at(now)).toString()) as { data: { is_active: boolean }[] }).data[0]!.is_active;
    expect(activeAt(NOW)).toBe(true);
    expect(activeAt(NOW + 1)).toBe(false);
    for (const now of [NOW, NOW + 1, NOW]) expect(keyPageJson(at(now)).toString()).toBe(viaPresent(at(now)));
  });

  it("a changed key is a new frozen record, and its page shows the change (the JSON is kept per record, not per id)", () => {
    const before = Object.freeze({ ...base });
    const after = Object.freeze({ ...base, name: "renamed", metadata: Object.freeze({ team: "b" }) });
    expect(keyPageJson(page([before])).toString()).toBe(viaPresent(page([before])));
    expect(keyPageJson(page([after])).toString()).toBe(viaPresent(page([after])));
  });

  it("a usage overlay of a frozen record shows the pending usage, and the record's own page stays as it was", () => {
    const usage = new UsageRecorder({} as Store, 60_000, pino({ level: "silent" }));
    const stored = Object.freeze({ ...full, lastUsedAt: NOW - 5000, totalRequests: 7 });
    expect(keyPageJson(page([stored])).toString()).toBe(viaPresent(page([stored])));
    for (let n = 1; n <= 3; n++) {
      usage.record(stored.id, NOW + n);
      const overlaid = usage.overlay(stored);
      const both = page([overlaid, stored], null, 2, [stored, stored]);
      const json = JSON.parse(keyPageJson(both).toString()) as { data: { last_used_at: string; total_requests: number }[] };
      expect(json.data.map((k) => [k.last_used_at, k.total_requests])).toEqual([
        [new Date(NOW + n).toISOString(), 7 + n],
        [new Date(NOW - 5000).toISOString(), 7],
      ]);
      expect(keyPageJson(both).toString()).toBe(viaPresent(both));
    }
  });

  it("the SQLite list cache's count for a key covers the record and the JSON kept for it, whatever its strings", () => {
    const entries = (ch: string) => Object.fromEntries(Array.from({ length: 20 }, (_, i) => [ch.repeat(39) + String.fromCharCode(65 + i), ch.repeat(500)]));
    const keys: KeyRecord[] = [
      base,
      full,
      { ...base, name: "\u0001".repeat(200), metadata: entries("\u0001") }, // 4.5 times: every character escaped as \u0001
      { ...full, scopes: Array.from({ length: 50 }, (_, i) => `s${i}:${"x".repeat(60)}`), metadata: entries("x") },
      { ...full, name: '"\\'.repeat(67), metadata: entries('"') },
      { ...full, name: "鍵".repeat(200), metadata: entries("鍵") },
      { ...full, name: "😀".repeat(100), metadata: entries("😀") },
    ];
    for (const k of keys) expect(keyRecordBytes(k) + keyPageJson(page([k])).byteLength).toBeLessThanOrEqual(listedKeyBytes(k));
  });

  it("pages written one after another keep their own bytes, small ones (cut from a shared buffer) and large ones", () => {
    const usage = new UsageRecorder({} as Store, 60_000, pino({ level: "silent" }));
    const stored = Array.from({ length: 40 }, (_, i) => Object.freeze({ ...full, id: `key_01M8TSH7WXVPA7364E3MD0Z${String(i).padStart(3, "0")}` }));
    const pages: KeyListPage[] = [];
    for (let n = 0; n < 60; n++) {
      usage.record(stored[n % 40]!.id, NOW + n);
      const keys = stored.slice(0, 1 + (n % 40));
      pages.push(page(keys.map((k) => usage.overlay(k)), n % 3 === 0 ? null : `t${n}`, n, keys));
    }
    const written = pages.map((p) => keyPageJson(p));
    expect(written.some((b) => b.byteLength < 8192) && written.some((b) => b.byteLength > 8192)).toBe(true);
    pages.forEach((p, n) => expect(written[n]!.toString(), `page ${n}`).toBe(viaPresent(p)));
  });

  it("a page of other records behind the same first one is rendered as its own (a kept run is reused only for the very same records)", () => {
    const first = Object.freeze({ ...base });
    const second = Object.freeze({ ...full, id: "key_01M8TSH7WXVPA7364E3MD0ZPB1" });
    const changed = Object.freeze({ ...second, name: "renamed" });
    for (const p of [page([first, second]), page([first, changed]), page([first, second])]) {
      expect(keyPageJson(p).toString()).toBe(viaPresent(p));
    }
  });

  it("has a field for every field of Key", () => {
    const fields = Object.keys((JSON.parse(keyPageJson(page([full])).toString()) as { data: object[] }).data[0]!);
    const message = Object.keys((JSON.parse(viaPresent(page([full]))) as { data: object[] }).data[0]!);
    expect(fields).toEqual(message);
  });
});
