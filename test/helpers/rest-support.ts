import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { expect } from "vitest";
import { rest, type RestResponse } from "./rest.js";
import type { RunningServer } from "./server.js";

/** The fields of the SPEC §3 key object, exactly. */
export const KEY_FIELDS = [
  "id",
  "customer_id",
  "instance_id",
  "name",
  "prefix",
  "environment",
  "scopes",
  "metadata",
  "last_used_at",
  "total_requests",
  "expires_at",
  "created_at",
  "updated_at",
  "revoked_at",
  "is_active",
  // issue 13
  "enabled",
  "rolled_from",
  "rolled_to",
  "hint",
].sort();

/** SPEC §2: `zpk_live_` | `zpk_test_` + 43 base64url + 6 base62. */
export const SECRET_PATTERN = /^zpk_(live|test)_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$/;
export const KEY_ID_PATTERN = /^key_[0-9A-HJKMNP-TV-Z]{26}$/;
export const EVENT_ID_PATTERN = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/;
export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** The checksum SPEC §2 defines, computed independently of the service's code. */
export function specChecksum(body: string): string {
  let n = crc32(Buffer.from(body, "utf8")) >>> 0;
  let out = "";
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(6, "0");
}

/** A key with a correct format and checksum that the service never issued. */
export function wellFormedUnknownKey(env: "live" | "test" = "live"): string {
  const body = `zpk_${env}_${randomBytes(32).toString("base64url")}`;
  return body + specChecksum(body);
}

/** The same key with a checksum that does not match. */
export function withWrongChecksum(secret: string): string {
  const body = secret.slice(0, -6);
  const good = secret.slice(-6);
  const bad = good === "000000" ? "000001" : "000000";
  return body + bad;
}

/**
 * Asserts a SPEC §3 error: the status, `{"error":{"code","message"},"request_id"}` and nothing
 * else, a non-empty message without a stack trace, and `X-Request-Id` equal to `request_id`.
 */
export function expectError(res: RestResponse, status: number, code: string | string[], messageIncludes?: string): void {
  const ctx = `${res.status} ${JSON.stringify(res.body)}`;
  expect(res.status, ctx).toBe(status);
  expect(res.headers.get("content-type") ?? "", ctx).toMatch(/application\/json/);
  expect(Object.keys(res.body ?? {}).sort(), ctx).toEqual(["error", "request_id"]);
  expect(Object.keys(res.body.error).sort(), ctx).toEqual(["code", "message"]);
  if (Array.isArray(code)) expect(code, ctx).toContain(res.body.error.code);
  else expect(res.body.error.code, ctx).toBe(code);
  expect(typeof res.body.error.message, ctx).toBe("string");
  expect(res.body.error.message.length, ctx).toBeGreaterThan(0);
  expect(res.body.error.message, ctx).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/);
  if (messageIncludes) expect(res.body.error.message, ctx).toContain(messageIncludes);
  expect(typeof res.body.request_id, ctx).toBe("string");
  expect(res.body.request_id.length, ctx).toBeGreaterThan(0);
  expect(res.headers.get("x-request-id"), ctx).toBe(res.body.request_id);
}

/** Issues a key with another key (the public route); asserts 201. */
export async function issueWith(server: Pick<RunningServer, "url">, key: string, fields: Record<string, unknown> = {}) {
  const res = await rest(server, "POST", "/v1/api-keys", { key, body: { name: "child", ...fields } });
  if (res.status !== 201) throw new Error(`issue failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; secret: string; prefix: string; [k: string]: any };
}

/** Everything in a customer's audit trail (all pages), read with the internal credential. */
export async function auditTrail(
  server: Pick<RunningServer, "url" | "internalToken">,
  customerId: string,
  query = "",
): Promise<any[]> {
  const out: any[] = [];
  let token: string | null = null;
  do {
    const q = new URLSearchParams(query);
    q.set("customer_id", customerId);
    q.set("page_size", "100");
    if (token) q.set("page_token", token);
    const res = await rest(server, "GET", `/v1/audit-events?${q}`, { key: server.internalToken });
    if (res.status !== 200) throw new Error(`audit list failed: ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...res.body.data);
    token = res.body.next_page_token;
  } while (token);
  return out;
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= deadline) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
