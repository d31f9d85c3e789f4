/**
 * Measures what one entry of the key cache costs in heap, for the shapes a client can create
 * (SPEC §2 limits), and compares it with the estimate the cache is bounded by
 * (src/domain/key-record-bytes.ts). Records are made the way the stores make them (JSON.parse of
 * the stored row), kept in an LRUCache as the KeyCache keeps them.
 *
 *   node --expose-gc --import tsx bench/key-cache-bytes.ts
 */
import { randomBytes, randomUUID } from "node:crypto";
import { LRUCache } from "lru-cache";
import { keyRecordBytes } from "../src/domain/key-record-bytes.js";
import type { KeyRecord } from "../src/domain/types.js";
import { LIMITS } from "../src/domain/validation.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const N = 2000;
const ascii = (n: number) => "a".repeat(n - 8) + randomBytes(4).toString("hex");
/** Astral characters: each one code point (what the limits count) but two UTF-16 units. */
const astral = (n: number) => "🔑".repeat(n - 1) + String.fromCodePoint(0x1f600 + Math.floor(Math.random() * 50));

function record(shape: "minimal" | "max ascii" | "max two-byte"): KeyRecord {
  const big = shape !== "minimal";
  const s = shape === "max two-byte" ? astral : ascii;
  const scopes = big ? Array.from({ length: LIMITS.scopes }, (_, i) => `scope${i}:${"x".repeat(LIMITS.scopeChars - 10)}`.slice(0, LIMITS.scopeChars)) : [];
  const metadata: Record<string, string> = {};
  if (big) for (let i = 0; i < LIMITS.metadataEntries; i++) metadata[`${i}`.padStart(2, "0") + s(LIMITS.metadataKeyChars - 2)] = s(LIMITS.metadataValueChars);
  const row = {
    id: `key_01JD3X5Q7R2M9T4V6W8Y0Z${randomBytes(2).toString("hex").toUpperCase()}`,
    customerId: randomUUID(),
    instanceId: big ? randomUUID() : null,
    name: big ? s(LIMITS.nameChars) : "k",
    prefix: `zpk_live_${randomBytes(4).toString("hex")}`,
    environment: "live",
    scopes: JSON.stringify(scopes),
    metadata: JSON.stringify(metadata),
    digest: randomBytes(32).toString("hex"),
  };
  // As rowToKey does: the JSON columns are parsed into fresh arrays and maps.
  const json = JSON.parse(JSON.stringify(row)) as typeof row;
  return {
    ...json,
    environment: "live",
    scopes: JSON.parse(json.scopes) as string[],
    metadata: JSON.parse(json.metadata) as Record<string, string>,
    lastUsedAt: null,
    totalRequests: 0,
    expiresAt: null,
    createdAt: Date.now(),
    updatedAt: Date.now(),
    revokedAt: null,
    enabled: true,
    rolledFrom: null,
    rolledTo: null,
    predecessorGraceMs: null,
    lastFour: randomBytes(2).toString("hex"),
  };
}

for (const shape of ["minimal", "max ascii", "max two-byte"] as const) {
  const estimate = keyRecordBytes(record(shape));
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const cache = new LRUCache<string, KeyRecord>({ max: N * 2, maxSize: 1e12, sizeCalculation: keyRecordBytes, ttl: 60_000 });
  // Everything an entry holds is made here and reachable only from the cache: the digest key,
  // the record, and whatever its parsed strings still reference.
  for (let i = 0; i < N; i++) cache.set(randomBytes(32).toString("hex"), record(shape));
  gc();
  gc();
  const perEntry = (process.memoryUsage().heapUsed - before) / N;
  console.log(
    `${shape.padEnd(13)} measured ${(perEntry / 1024).toFixed(1).padStart(5)} KiB/entry, estimate ${(estimate / 1024).toFixed(1).padStart(5)} KiB` +
      ` (${((estimate / perEntry) * 100).toFixed(0)} %); default KEY_CACHE_MAX_BYTES 64 MiB holds ${Math.floor((64 * 2 ** 20) / estimate)}`,
  );
  if (cache.size !== N) throw new Error(`cache kept ${cache.size}`);
  cache.clear();
}
