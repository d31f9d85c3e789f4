import { invalid } from "./errors.js";
import { isUuid, normalizeUuid } from "./ids.js";
import { ENVIRONMENTS, type Environment } from "./key-format.js";

/**
 * Input rules shared by every transport. Each failure names the field, so a client knows what
 * to fix. Limits follow Stripe's metadata limits and common key-manager practice.
 */
export const LIMITS = {
  nameChars: 128,
  scopes: 50,
  scopeChars: 128,
  metadataEntries: 20,
  metadataKeyChars: 40,
  metadataValueChars: 500,
  pageSizeMax: 100,
  pageSizeDefault: 50,
} as const;

const SCOPE_PATTERN = /^[A-Za-z0-9_.:\/*-]+$/;
const chars = (s: string) => [...s].length;

export function validName(name: string, field = "name"): string {
  if (name.trim().length === 0) throw invalid(`${field} is required and must not be blank`);
  if (chars(name) > LIMITS.nameChars) throw invalid(`${field} must be at most ${LIMITS.nameChars} characters`);
  if (/[\u0000-\u001f\u007f]/.test(name)) throw invalid(`${field} must not contain control characters`);
  return name;
}

export function validUuid(value: string, field: string): string {
  if (!isUuid(value)) throw invalid(`${field} must be a UUID`);
  return normalizeUuid(value);
}

/** An optional UUID: empty means "not given". */
export const optionalUuid = (value: string, field: string): string | null =>
  value === "" ? null : validUuid(value, field);

export function validScopes(scopes: readonly string[], field = "scopes"): string[] {
  if (scopes.length > LIMITS.scopes) throw invalid(`${field} must have at most ${LIMITS.scopes} entries`);
  for (const s of scopes) {
    if (s.length === 0 || s.length > LIMITS.scopeChars || !SCOPE_PATTERN.test(s)) {
      throw invalid(`${field} entries must be 1-${LIMITS.scopeChars} characters of A-Z a-z 0-9 _ . : / * -`);
    }
  }
  return [...new Set(scopes)].sort();
}

export function validMetadata(metadata: Record<string, string>, field = "metadata"): Record<string, string> {
  const entries = Object.entries(metadata);
  if (entries.length > LIMITS.metadataEntries) throw invalid(`${field} must have at most ${LIMITS.metadataEntries} entries`);
  for (const [k, v] of entries) {
    if (k.length === 0 || chars(k) > LIMITS.metadataKeyChars) {
      throw invalid(`${field} keys must be 1-${LIMITS.metadataKeyChars} characters`);
    }
    if (chars(v) > LIMITS.metadataValueChars) {
      throw invalid(`${field} values must be at most ${LIMITS.metadataValueChars} characters`);
    }
  }
  return Object.fromEntries(entries);
}

export function validEnvironment(env: string): Environment {
  if (env === "") return "live";
  if (!(ENVIRONMENTS as readonly string[]).includes(env)) throw invalid(`environment must be "live" or "test"`);
  return env as Environment;
}

/** 9999-12-31T23:59:59.999Z: the last instant RFC 3339 (and protobuf's Timestamp JSON) can write. */
const LAST_TIMESTAMP_MS = 253_402_300_799_999;

export function validFutureTime(at: number, now: number, field = "expires_at"): number {
  if (!Number.isFinite(at) || at > LAST_TIMESTAMP_MS) throw invalid(`${field} must be a valid timestamp before year 10000`);
  if (at <= now) throw invalid(`${field} must be in the future`);
  return at;
}

export function validPageSize(size: number): number {
  if (size === 0) return LIMITS.pageSizeDefault;
  if (!Number.isInteger(size) || size < 1 || size > LIMITS.pageSizeMax) {
    throw invalid(`page_size must be between 1 and ${LIMITS.pageSizeMax}`);
  }
  return size;
}
