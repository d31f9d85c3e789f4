import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checksum, digestKey, generateKey, isWellFormedKey, parseKey } from "../../src/domain/key-format.js";

/*
 * Checksum test vectors, computed independently of the implementation under test with a one-off
 * Python 3 script (zlib.crc32 of the UTF-8 bytes, masked to unsigned 32 bits, written in base62
 * with the alphabet 0-9A-Za-z, most significant digit first, left-padded with "0" to 6 chars):
 *
 *   import zlib
 *   A = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
 *   def cs(s):
 *       n = zlib.crc32(s.encode()) & 0xffffffff
 *       o = ""
 *       while n: o = A[n % 62] + o; n //= 62
 *       return o.rjust(6, "0")
 *
 * The full keys below are `body + cs(body)` from the same script.
 */
const VECTORS: Array<[input: string, crc32: number, expected: string]> = [
  ["", 0, "000000"],
  ["a", 3904355907, "4GEHKN"],
  ["hello world", 222957957, "0F5VY5"],
  ["zpk_live_", 4067658728, "4RHTqq"],
  ["é", 235179326, "0Fumsw"], // UTF-8 bytes, not UTF-16 code units
  ["pad51", 5973700, "00P420"], // a small CRC: needs two digits of left padding
  ["zpk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 3151036097, "3RFQQr"],
  ["zpk_live_abcdefghijklmnopqrstuvwxyz0123456789-_QRSTU", 405380768, "0RQw3U"],
];

const KNOWN_GOOD_KEYS = [
  "zpk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3RFQQr",
  "zpk_test_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_x44aoD3",
  "zpk_live_abcdefghijklmnopqrstuvwxyz0123456789-_QRSTU0RQw3U",
];

/** Another character of the key alphabet at position `i` (so only the checksum can catch it). */
function changeCharAt(s: string, i: number): string {
  const c = s[i]!;
  const replacement = c === "A" ? "B" : c === "0" ? "1" : /[0-9A-Za-z]/.test(c) ? "A" : "a";
  return s.slice(0, i) + replacement + s.slice(i + 1);
}

describe("checksum", () => {
  it.each(VECTORS)("checksum(%j) (crc32 %d) = %s", (input, _crc, expected) => {
    expect(checksum(input)).toBe(expected);
  });

  it("is always 6 base62 characters", () => {
    for (let i = 0; i < 200; i++) expect(checksum(`x${i}`)).toMatch(/^[0-9A-Za-z]{6}$/);
  });
});

describe("generateKey", () => {
  it.each(["live", "test"] as const)("makes a %s key of the documented format", (env) => {
    const g = generateKey(env);
    expect(g.secret).toMatch(new RegExp(`^zpk_${env}_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$`));
    expect(g.secret).toHaveLength(`zpk_${env}_`.length + 43 + 6);
    // checksum of everything before it
    expect(g.secret.slice(-6)).toBe(checksum(g.secret.slice(0, -6)));
  });

  it("prefix is zpk_<env>_ plus the first 8 random characters", () => {
    const g = generateKey("live");
    expect(g.prefix).toBe(g.secret.slice(0, "zpk_live_".length + 8));
    expect(g.prefix).toMatch(/^zpk_live_[A-Za-z0-9_-]{8}$/);
    const t = generateKey("test");
    expect(t.prefix).toBe(t.secret.slice(0, "zpk_test_".length + 8));
  });

  it("digest is the SHA-256 hex of the whole key, and never the key itself", () => {
    const g = generateKey("live");
    expect(g.digest).toBe(createHash("sha256").update(g.secret).digest("hex"));
    expect(g.digest).toBe(digestKey(g.secret));
    expect(g.digest).not.toContain(g.secret.slice(9, 30));
  });

  it("random part decodes to 32 bytes and keys do not repeat", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const g = generateKey("live");
      expect(Buffer.from(g.secret.slice(9, 52), "base64url")).toHaveLength(32);
      seen.add(g.secret);
    }
    expect(seen.size).toBe(500);
  });
});

describe("parseKey", () => {
  it.each(KNOWN_GOOD_KEYS)("accepts independently computed key %s", (k) => {
    const parsed = parseKey(k);
    expect(parsed).not.toBeNull();
    expect(parsed!.environment).toBe(k.startsWith("zpk_test_") ? "test" : "live");
    expect(parsed!.prefix).toBe(k.slice(0, 17));
  });

  it("accepts generated keys and returns their environment and prefix", () => {
    for (const env of ["live", "test"] as const) {
      for (let i = 0; i < 50; i++) {
        const g = generateKey(env);
        expect(parseKey(g.secret)).toEqual({ environment: env, prefix: g.prefix });
      }
    }
  });

  it("rejects a wrong prefix even with a correct checksum for it", () => {
    const random = "A".repeat(43);
    for (const p of ["zpk_prod_", "zpk_Live_", "zpx_live_", "sk_live_", "zpk_live", "ZPK_LIVE_", ""]) {
      const body = p + random;
      expect(parseKey(body + checksum(body)), p).toBeNull();
    }
  });

  it("rejects a wrong length even with a correct checksum for it", () => {
    for (const n of [0, 1, 42, 44, 60]) {
      const body = "zpk_live_" + "A".repeat(n);
      expect(parseKey(body + checksum(body)), `random length ${n}`).toBeNull();
    }
    const good = KNOWN_GOOD_KEYS[0]!;
    expect(parseKey(good.slice(0, -1))).toBeNull();
    expect(parseKey(good + "0")).toBeNull();
    expect(parseKey(` ${good}`)).toBeNull();
    expect(parseKey(`${good}\n`)).toBeNull();
  });

  it("rejects a key with any one character changed (checksum)", () => {
    const g = generateKey("live").secret;
    // every position of the random part and of the checksum
    for (let i = "zpk_live_".length; i < g.length; i++) {
      expect(parseKey(changeCharAt(g, i)), `changed at ${i}`).toBeNull();
    }
    for (const k of KNOWN_GOOD_KEYS) expect(parseKey(changeCharAt(k, k.length - 1))).toBeNull();
  });

  it("authentication's boolean check agrees with the shape and the checksum's encoding on good keys, every one-character change and random strings", () => {
    const g = generateKey("test").secret;
    const candidates = [...KNOWN_GOOD_KEYS, g, "", "zpk_live_", g.slice(0, -1), `${g}0`];
    for (let i = 0; i < g.length; i++) candidates.push(changeCharAt(g, i));
    const alphabet = "zpk_livetsAZaz09-+ ";
    for (let i = 0; i < 500; i++) candidates.push(g.slice(0, 9 + (i % 50)) + Array.from({ length: 58 - (i % 50) }, (_, j) => alphabet[(i * 7 + j * 13) % alphabet.length]).join(""));
    // The oracle encodes the body's checksum (checksum(), vector-tested above) and compares text,
    // where isWellFormedKey decodes the key's digits to a number: parseKey calls isWellFormedKey,
    // so agreeing with parseKey would prove nothing.
    const SHAPE = /^zpk_(live|test)_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$/;
    const wellFormed = (c: string) => SHAPE.test(c) && checksum(c.slice(0, -6)) === c.slice(-6);
    for (const c of candidates) expect(isWellFormedKey(c), c).toBe(wellFormed(c));
    expect(candidates.filter(wellFormed).length).toBe(KNOWN_GOOD_KEYS.length + 1);
    expect(isWellFormedKey(g)).toBe(true);
  });

  it("rejects characters outside the alphabets", () => {
    const body = "zpk_live_" + "A".repeat(42) + "+";
    expect(parseKey(body + checksum(body))).toBeNull();
    const b2 = "zpk_live_" + "A".repeat(43);
    expect(parseKey(b2 + "3RFQQ-")).toBeNull();
  });
});
