import { hash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * The key format of SPEC §2: `zpk_live_` | `zpk_test_`, 43 chars of base64url (32 CSPRNG bytes),
 * then a 6-char base62 CRC32 of everything before it. The checksum lets us reject typos and garbage
 * without touching storage, and lets secret scanners validate candidates offline.
 */
export type Environment = "live" | "test";

export const ENVIRONMENTS: readonly Environment[] = ["live", "test"];
const CHECKSUM_LENGTH = 6;
const PREFIX_RANDOM_CHARS = 8;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_PATTERN = /^zpk_(live|test)_([A-Za-z0-9_-]{43})([0-9A-Za-z]{6})$/;
/** KEY_PATTERN without its groups: a test makes no match array. */
const KEY_SHAPE = /^zpk_(?:live|test)_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$/;
/** Each base62 digit's value, by character code (-1: not a digit). */
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE62.length; i++) DIGIT[BASE62.charCodeAt(i)] = i;
/** Any string that starts like one of our keys: used to spot keys where they must not be (URLs). */
export const KEY_LIKE = /zpk_(live|test)_/;

/** A freshly generated key: the secret goes to the caller once; only the digest is stored. */
export interface GeneratedKey {
  secret: string;
  prefix: string;
  digest: string;
}

/** A presented key that passed the format and checksum checks. */
export interface ParsedKey {
  environment: Environment;
  prefix: string;
}

/** CRC32 (IEEE, zlib's) of `body` as 6 base62 digits, most significant first, zero-padded. */
export function checksum(body: string): string {
  let n = crc32(body) >>> 0;
  let out = "";
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(CHECKSUM_LENGTH, "0");
}

/**
 * SHA-256 of the whole key, hex: the only form in which a key is stored and looked up.
 * crypto.hash is the one-shot form (no Hash object): this runs on every Authenticate.
 */
export function digestKey(secret: string): string {
  return hash("sha256", secret, "hex");
}

export function generateKey(environment: Environment): GeneratedKey {
  const random = randomBytes(32).toString("base64url");
  const body = `zpk_${environment}_${random}`;
  const secret = body + checksum(body);
  return {
    secret,
    prefix: `zpk_${environment}_${random.slice(0, PREFIX_RANDOM_CHARS)}`,
    digest: digestKey(secret),
  };
}

/**
 * Format and checksum check, no storage access; false means MALFORMED. Authentication's check
 * (every Authenticate, every keyed REST call): it compares the checksum's digits as a number and
 * makes no strings, 0.22 µs against parseKey's 0.35 µs.
 */
export function isWellFormedKey(candidate: string): boolean {
  if (!KEY_SHAPE.test(candidate)) return false;
  const bodyEnd = candidate.length - CHECKSUM_LENGTH;
  let sum = 0; // the checksum's 6 base62 digits (KEY_SHAPE let only digits through)
  for (let i = bodyEnd; i < candidate.length; i++) sum = sum * 62 + DIGIT[candidate.charCodeAt(i)]!;
  return crc32(candidate.slice(0, bodyEnd)) >>> 0 === sum;
}

/** isWellFormedKey, and what the key says of itself. Null means MALFORMED. */
export function parseKey(candidate: string): ParsedKey | null {
  if (!isWellFormedKey(candidate)) return null;
  const [, env, random] = KEY_PATTERN.exec(candidate) as unknown as [string, Environment, string];
  return { environment: env, prefix: `zpk_${env}_${random.slice(0, PREFIX_RANDOM_CHARS)}` };
}
