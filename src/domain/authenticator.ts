import type { AuditLog } from "./audit-log.js";
import { invalid } from "./errors.js";
import { digestKey, isWellFormedKey } from "./key-format.js";
import type { RateLimiter } from "./rate-limit/rate-limiter.js";
import { grants } from "./scopes.js";
import type { UsageRecorder } from "./usage-recorder.js";
import { isExpired, type KeyRecord, type RateLimitDecision, type RequestOrigin } from "./types.js";
import { optionalUuid, validScopes } from "./validation.js";

/** Longest string worth running the key format check on (keys are 64-65 chars). */
const MAX_KEY_CHARS = 256;

/** The Authenticate RPC's request as it arrives, before validation ("" = not given). */
export interface AuthenticateRequest {
  key: string;
  instanceId: string;
  requiredScopes: string[];
  charge: number;
}

export type DenialReason =
  | "malformed"
  | "unknown"
  | "expired"
  | "revoked"
  | "wrong_instance"
  | "missing_scope"
  | "rate_limited"
  | "disabled";

export interface AuthCheck {
  /** The instance being accessed; a key bound to another one is denied. */
  instanceId: string | null;
  requiredScopes: readonly string[];
  /** Tokens to take from the customer's bucket; 0 takes none. */
  charge: number;
  /** Audit action for a refused charge: `auth.failed` (Authenticate) or `rate_limit.exceeded` (/v1). */
  rateLimitAction: "auth.failed" | "rate_limit.exceeded";
}

/** An expected denial is a value, not an exception. */
export type AuthResult =
  | { valid: true; key: KeyRecord; rateLimit: RateLimitDecision | null }
  | { valid: false; reason: DenialReason; key: KeyRecord | null; rateLimit: RateLimitDecision | null };

/**
 * Where a request came from, for the audit event of a denial: the value, or a function that
 * works it out (a gateway's valid call never needs it).
 */
export type OriginOf = RequestOrigin | (() => RequestOrigin);

/** Looks up a key record by digest: the store, or a cache in front of it. */
export type KeyLookup = (digest: string) => Promise<KeyRecord | null>;

/**
 * Decides whether a presented key may be used (SPEC §5), in a fixed order: format and checksum
 * (no storage access), existence, revocation, expiry, instance, scopes, then the rate-limit
 * charge, so a refused request never takes a token. Every denial is audited.
 */
export class Authenticator {
  constructor(
    private readonly lookup: KeyLookup,
    private readonly rateLimiter: RateLimiter,
    private readonly audit: AuditLog,
    private readonly usage: UsageRecorder,
    private readonly now: () => number,
    /** Told every outcome ("valid" or the denial reason), for metrics. */
    private readonly observe: (outcome: "valid" | DenialReason) => void = () => {},
    /** Told every successful use (roll.ts starts a predecessor's grace on a successor's first use). */
    private readonly onValid: (key: KeyRecord) => void = () => {},
    /**
     * Prefixes an operator registered for imported keys without our checksum (IMPORT_PREFIXES):
     * only strings starting with one of them skip the offline check and are looked up.
     */
    private readonly importPrefixes: readonly string[] = [],
  ) {}

  /**
   * The Authenticate RPC (SPEC §4): validates its fields, then `authenticate`. Only an empty key
   * is an error; any other key that fails the format check is a MALFORMED denial.
   */
  async verify(req: AuthenticateRequest, origin: OriginOf): Promise<AuthResult> {
    if (req.key === "") throw invalid("key is required");
    const check: AuthCheck = {
      instanceId: optionalUuid(req.instanceId, "instance_id"),
      requiredScopes: validScopes(req.requiredScopes, "required_scopes"),
      charge: req.charge,
      rateLimitAction: "auth.failed",
    };
    return this.authenticate(req.key.length > MAX_KEY_CHARS ? "" : req.key, check, origin);
  }

  async authenticate(presented: string, check: AuthCheck, origin: OriginOf): Promise<AuthResult> {
    if (!isWellFormedKey(presented) && !isLegacyImport(presented, this.importPrefixes)) return this.deny("malformed", null, origin, check);
    const key = await this.lookup(digestKey(presented));
    if (!key) return this.deny("unknown", null, origin, check);
    const now = this.now();
    if (key.revokedAt !== null && key.revokedAt <= now) return this.deny("revoked", key, origin, check);
    if (isExpired(key, now)) return this.deny("expired", key, origin, check);
    if (!key.enabled) return this.deny("disabled", key, origin, check);
    if (check.instanceId !== null && key.instanceId !== null && key.instanceId !== check.instanceId) {
      return this.deny("wrong_instance", key, origin, check);
    }
    if (!grants(key.scopes, check.requiredScopes)) return this.deny("missing_scope", key, origin, check);
    let rateLimit: RateLimitDecision | null = null;
    if (check.charge > 0) {
      rateLimit = await this.rateLimiter.charge(key.customerId, check.charge);
      if (!rateLimit.allowed) return this.deny("rate_limited", key, origin, check, rateLimit);
    }
    this.usage.record(key.id, now);
    this.usage.recordOutcome(key, "valid", now);
    if (key.predecessorGraceMs !== null) this.onValid(key);
    this.observe("valid");
    return { valid: true, key, rateLimit };
  }

  private deny(
    reason: DenialReason,
    key: KeyRecord | null,
    origin: OriginOf,
    check: AuthCheck,
    rateLimit: RateLimitDecision | null = null,
  ): AuthResult {
    this.observe(reason);
    if (key) this.usage.recordOutcome(key, reason, this.now());
    const event = {
      customerId: key?.customerId ?? null,
      action: reason === "rate_limited" ? check.rateLimitAction : ("auth.failed" as const),
      actor: key ? { type: "key" as const, keyId: key.id, prefix: key.prefix } : { type: "anonymous" as const },
      target: key ? { keyId: key.id, prefix: key.prefix, name: key.name } : null,
      instanceId: key?.instanceId ?? null,
      outcome: "failure" as const,
      reason,
      ...(typeof origin === "function" ? origin() : origin),
    };
    // Every failure is aggregated per (key, reason, source): a known key's per interval of at most
    // 1 s (readable within it), garbage and refused charges per the longer flood interval.
    if (key === null || reason === "rate_limited") this.audit.aggregate(event);
    else this.audit.failure(event);
    return { valid: false, reason, key, rateLimit };
  }
}

/** Imported legacy keys: a registered prefix, then 8-200 printable non-space ASCII characters. */
const LEGACY_BODY = /^[\x21-\x7e]{8,200}$/;

export function isLegacyImport(presented: string, prefixes: readonly string[]): boolean {
  if (prefixes.length === 0) return false;
  const prefix = prefixes.find((p) => presented.startsWith(p));
  return prefix !== undefined && LEGACY_BODY.test(presented.slice(prefix.length));
}
