import { hash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * The key format of SPEC §2: `zpk_live_` | `zpk_test_`, 43 chars of base64url (32 CSPRNG bytes),
 * then a 6-char base62 CRC32 of everything before it. The checksum lets us reject typos and garbage
 * without touching storage, and lets secret scanners validate candidates offline.
 */
export type Environment = "live" | "test";

export const ENVIRONMENTS: readonly Environment[] = ["live", "test"];
const RANDOM_LENGTH = 43;
const CHECKSUM_LENGTH = 6;
const PREFIX_RANDOM_CHARS = 8;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_PATTERN = /^zpk_(live|test)_([A-Za-z0-9_-]{43})([0-9A-Za-z]{6})$/;
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

/** Format and checksum check, no storage access. Null means MALFORMED. */
export function parseKey(candidate: string): ParsedKey | null {
  const m = KEY_PATTERN.exec(candidate);
  if (!m) return null;
  const [, env, random, sum] = m as unknown as [string, Environment, string, string];
  if (random.length !== RANDOM_LENGTH) return null;
  if (checksum(candidate.slice(0, candidate.length - CHECKSUM_LENGTH)) !== sum) return null;
  return { environment: env, prefix: `zpk_${env}_${random.slice(0, PREFIX_RANDOM_CHARS)}` };
}
