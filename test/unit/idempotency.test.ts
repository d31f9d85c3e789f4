import Database from "better-sqlite3";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "../../src/domain/errors.js";
import { Idempotency } from "../../src/domain/idempotency.js";
import type { Prepared } from "../../src/domain/key-manager.js";
import { SqliteStore } from "../../src/storage/sqlite/sqlite-store.js";
import { tempDir } from "../helpers/server.js";

/**
 * Idempotency (issue 13) over a real SQLite store with a controlled clock: replay, conflicts,
 * the concurrent duplicate, expiry, and what is at rest in the database file.
 */
const T0 = Date.UTC(2026, 0, 1);
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

function setup() {
  const dir = tempDir("zpk-idem-");
  const store = new SqliteStore(dir);
  stores.push(store);
  let now = T0;
  const idem = new Idempotency(store, () => now, { ttlMs: 24 * 3600_000, leaseMs: 30_000, purgeIntervalMs: 60_000 }, pino({ level: "silent" }));
  let runs = 0;
  /** A fake write whose answer embeds a fresh "secret". */
  const op = (gate?: Promise<void>) => async (): Promise<Prepared<Uint8Array>> => {
    runs++;
    const secret = `zpk_live_secret_${runs}_${Math.random().toString(36).slice(2)}`;
    return { result: new TextEncoder().encode(secret), keyIds: [], commit: async () => void (await gate) };
  };
  return { dir, store, idem, op, runs: () => runs, advance: (ms: number) => (now += ms) };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const conflict = async (p: Promise<unknown>) => {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(ApiError);
  expect((e as ApiError).code).toBe("idempotency_conflict");
  return e as ApiError;
};

describe("Idempotency", () => {
  it("replays the first answer for the same scope, key and parameters; other parameters are a conflict", async () => {
    const { idem, op, runs } = setup();
    const first = await idem.run("customer:a", "a", "key-1", "IssueKey\0{name:x}", op());
    const again = await idem.run("customer:a", "a", "key-1", "IssueKey\0{name:x}", op());
    expect(text(again)).toBe(text(first));
    expect(runs()).toBe(1);
    await conflict(idem.run("customer:a", "a", "key-1", "IssueKey\0{name:y}", op()));
    const otherScope = await idem.run("customer:b", "b", "key-1", "IssueKey\0{name:x}", op());
    expect(text(otherScope)).not.toBe(text(first));
  });

  it("a duplicate while the first call still runs is a retryable conflict; afterwards it replays", async () => {
    const { idem, op } = setup();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const first = idem.run("customer:a", "a", "k", "p", op(gate));
    await new Promise((r) => setImmediate(r));
    const e = await conflict(idem.run("customer:a", "a", "k", "p", op()));
    expect(e.headers["retry-after"]).toBe("1");
    open();
    const answer = await first;
    expect(text(await idem.run("customer:a", "a", "k", "p", op()))).toBe(text(answer));
  });

  it("a refused call leaves nothing: the retry runs afresh", async () => {
    const { idem, op, runs } = setup();
    const refuse = async (): Promise<Prepared<Uint8Array>> => {
      throw new ApiError("invalid_argument", "no");
    };
    await expect(idem.run("customer:a", "a", "k", "p", refuse)).rejects.toThrow("no");
    await idem.run("customer:a", "a", "k", "p", op());
    expect(runs()).toBe(1);
  });

  it("after 24 hours the record is expired and purged: the same key runs afresh", async () => {
    const { idem, op, store, advance } = setup();
    const first = await idem.run("customer:a", "a", "k", "p", op());
    advance(24 * 3600_000 + 1);
    expect(await store.purgeIdempotency(T0 + 24 * 3600_000 + 1)).toBe(1);
    const later = await idem.run("customer:a", "a", "k", "p", op());
    expect(text(later)).not.toBe(text(first));
  });

  it("refuses idempotency keys that are empty, longer than 255 or not printable ASCII", async () => {
    const { idem, op } = setup();
    for (const bad of ["", "x".repeat(256), "tab\there", "caf\u00e9"]) {
      const e = await idem.run("customer:a", "a", bad, "p", op()).then(() => null, (x: unknown) => x);
      expect((e as ApiError).code, JSON.stringify(bad)).toBe("invalid_argument");
    }
    await idem.run("customer:a", "a", "x".repeat(255), "p", op());
  });

  it("at rest: neither the idempotency key nor the answer's secret is in the database file", async () => {
    const { idem, op, dir } = setup();
    const key = "idem-8f14e45f-ceea-467f-a0e6-1a2b3c4d5e6f";
    const answer = text(await idem.run("customer:a", "a", key, "p", op()));
    const db = new Database(join(dir, "zpk.sqlite"), { readonly: true });
    const rows = db.prepare("SELECT * FROM idempotency").all() as Record<string, unknown>[];
    db.close();
    expect(rows).toHaveLength(1);
    const dump = JSON.stringify(rows, (_k, v) => (v instanceof Buffer || v instanceof Uint8Array ? Buffer.from(v).toString("latin1") : v));
    expect(dump).not.toContain(key);
    expect(dump).not.toContain(answer);
    expect(dump).not.toContain(answer.slice(0, 20));
    expect(rows[0]!.state).toBe("done");
  });
});
