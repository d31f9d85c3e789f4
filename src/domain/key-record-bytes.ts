import type { KeyRecord } from "./types.js";

/**
 * Heap bytes a cached KeyRecord costs, estimated from its strings (the bulk of a large key: up to
 * 50 scopes and 20 metadata entries of 40 + 500 characters, SPEC §2 limits in validation.ts), so
 * the key cache can be bounded in bytes (key-cache.ts) rather than in entries whose size varies
 * 100-fold. V8 stores a string in one byte per character when every code unit is Latin-1 and in
 * two otherwise, plus a header; the fixed part covers the record, its arrays and maps and the LRU
 * entry. Calibrated against measured heap (bench/key-cache-bytes.ts; figures in the README) to
 * stay at or above the true cost.
 */
export function keyRecordBytes(k: KeyRecord): number {
  let bytes = FIXED_BYTES + str(k.id) + str(k.customerId) + str(k.name) + str(k.prefix) + str(k.digest);
  if (k.instanceId !== null) bytes += str(k.instanceId);
  if (k.rolledFrom !== null) bytes += str(k.rolledFrom);
  if (k.rolledTo !== null) bytes += str(k.rolledTo);
  bytes += str(k.lastFour);
  for (const s of k.scopes) bytes += SLOT_BYTES + str(s);
  for (const key in k.metadata) bytes += ENTRY_BYTES + str(key) + str(k.metadata[key]!);
  return bytes;
}

/** The record, its scopes array and metadata object, the cache's entry and digest key. */
const FIXED_BYTES = 1152;
/** One element of the scopes array. */
const SLOT_BYTES = 8;
/** One property of the metadata map (dictionary-mode slot). */
const ENTRY_BYTES = 48;
/** Header of a heap string (map, hash, length), rounded up. */
const STRING_HEADER = 32;

const TWO_BYTE = /[^\u0000-\u00ff]/;

const str = (s: string) => STRING_HEADER + (TWO_BYTE.test(s) ? 2 * s.length : s.length);
