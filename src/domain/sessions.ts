import { createHash, randomBytes } from "node:crypto";
import type { Store } from "./store.js";
import type { KeyLookup } from "./authenticator.js";
import type { SessionRecord } from "./session-store.js";
import { invalid } from "./errors.js";
import { optionalUuid, validScopes, validUuid } from "./validation.js";
import { isActive, type Caller, type KeyRecord } from "./types.js";

export interface SessionOptions {
  /** Absolute lifetime of a session. */
  ttlMs: number;
  /** A session unused this long ends. */
  idleMs: number;
  /** Sessions kept per key (and per customer for portal sessions); older ones end first. */
  maxPerSubject: number;
  /** How long a portal URL can be opened. */
  portalTtlMs: number;
}

/** `lastSeenAt` is written at most this often per session (not one write per request). */
const TOUCH_EVERY_MS = 60_000;
/** Expired sessions and grants are swept this often. */
const SWEEP_EVERY_MS = 10 * 60_000;
/** Outstanding portal grants per customer (internal callers only, but bounded all the same). */
const MAX_GRANTS_PER_CUSTOMER = 20;

/** Session and grant tokens: never shaped like a key (`zpk_…`), so nothing mistakes one for the other. */
const SESSION_MARK = "zds_";
const GRANT_MARK = "zdg_";
const TOKEN_SHAPE = /^zd[sg]_[A-Za-z0-9_-]{43}$/;

const digestOf = (token: string) => createHash("sha256").update(token).digest("hex");
const newToken = (mark: string) => mark + randomBytes(32).toString("base64url");

export interface ResolvedSession {
  record: SessionRecord;
  caller: Caller;
}

export interface NewSession {
  token: string;
  record: SessionRecord;
}

/**
 * Dashboard sessions (issue "The dashboard"): server-side, in the Store, so every worker and
 * replica honours the same ones; only the token's digest is stored. A key session acts as its key
 * for as long as the key is active: each use looks the key up (through the key cache, so a
 * revocation made anywhere ends it within the cache's poll bound, and at once on the process
 * that revoked, which also deletes the key's sessions). A portal session acts with the scopes and
 * binding an internal caller granted, through a one-time grant.
 */
export class Sessions {
  private lastSweep = 0;

  constructor(
    private readonly store: Store,
    private readonly lookup: KeyLookup,
    private readonly now: () => number,
    readonly opts: SessionOptions,
  ) {}

  /** A session for a key that has just authenticated. */
  async signIn(key: KeyRecord): Promise<NewSession> {
    const now = this.now();
    const token = newToken(SESSION_MARK);
    const record: SessionRecord = {
      digest: digestOf(token),
      kind: "session",
      subject: `key:${key.id}`,
      customerId: key.customerId,
      keyId: key.id,
      keyDigest: key.digest,
      scopes: [],
      instanceId: null,
      returnUrl: null,
      createdBy: null,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: key.expiresAt === null ? now + this.opts.ttlMs : Math.min(now + this.opts.ttlMs, key.expiresAt),
    };
    await this.store.insertSession(record, this.opts.maxPerSubject);
    this.sweepNow(now);
    return { token, record };
  }

  /** A one-time grant for CreatePortalSession; the fields are the request's, validated here. */
  async createGrant(input: { customerId: string; scopes: string[]; instanceId: string; returnUrl: string; createdBy: string }): Promise<NewSession> {
    const customerId = validUuid(input.customerId, "customer_id");
    const scopes = validScopes(input.scopes);
    const instanceId = optionalUuid(input.instanceId, "instance_id");
    const returnUrl = validReturnUrl(input.returnUrl);
    const now = this.now();
    const token = newToken(GRANT_MARK);
    const record: SessionRecord = {
      digest: digestOf(token),
      kind: "grant",
      subject: `portal:${customerId}`,
      customerId,
      keyId: null,
      keyDigest: null,
      scopes,
      instanceId,
      returnUrl,
      createdBy: input.createdBy,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.opts.portalTtlMs,
    };
    await this.store.insertSession(record, MAX_GRANTS_PER_CUSTOMER);
    this.sweepNow(now);
    return { token, record };
  }

  /** Turns a grant into a session, once; null when unknown, used or expired. */
  async redeem(grantToken: string): Promise<NewSession | null> {
    if (!TOKEN_SHAPE.test(grantToken) || !grantToken.startsWith(GRANT_MARK)) return null;
    const grant = await this.store.takeGrant(digestOf(grantToken));
    const now = this.now();
    if (!grant || grant.expiresAt <= now) return null;
    const token = newToken(SESSION_MARK);
    const record: SessionRecord = {
      ...grant,
      digest: digestOf(token),
      kind: "session",
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.opts.ttlMs,
    };
    await this.store.insertSession(record, this.opts.maxPerSubject);
    return { token, record };
  }

  /** The session's caller, or null (unknown, expired, idle too long, key no longer active). */
  async resolve(token: string): Promise<ResolvedSession | null> {
    if (!TOKEN_SHAPE.test(token) || !token.startsWith(SESSION_MARK)) return null;
    const digest = digestOf(token);
    const record = await this.store.findSession(digest);
    if (!record) return null;
    const now = this.now();
    if (record.expiresAt <= now || now - record.lastSeenAt > this.opts.idleMs) {
      await this.store.deleteSession(digest);
      return null;
    }
    let caller: Caller;
    if (record.keyId !== null && record.keyDigest !== null) {
      const key = await this.lookup(record.keyDigest);
      if (!key || !isActive(key, now) || isDisabled(key)) {
        await this.store.deleteSessionsOfKey(record.keyId);
        return null;
      }
      caller = { kind: "key", key };
    } else {
      caller = { kind: "key", key: portalKey(record), actor: { type: "internal", name: `portal:${record.createdBy ?? "internal"}` } };
    }
    if (now - record.lastSeenAt > TOUCH_EVERY_MS) await this.store.touchSession(digest, now);
    return { record, caller };
  }

  async signOut(token: string): Promise<void> {
    if (TOKEN_SHAPE.test(token)) await this.store.deleteSession(digestOf(token));
  }

  /** Ends every session of a key (revoked or disabled). */
  async endSessionsOfKey(keyId: string): Promise<void> {
    await this.store.deleteSessionsOfKey(keyId);
  }

  private sweepNow(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    void this.store.deleteExpiredSessions(now).catch(() => {});
  }
}

/** Keys gain an `enabled` flag with the lifecycle work; a disabled key ends its sessions too. */
const isDisabled = (key: KeyRecord) => (key as KeyRecord & { enabled?: boolean }).enabled === false;

/**
 * A portal session acts through the same rules as a key (scopes, binding) without being one: this
 * record stands for it in the domain's checks and is never stored.
 */
function portalKey(s: SessionRecord): KeyRecord {
  // The lifecycle fields (enabled, rolled*, …) are set too, for key records that have them.
  const lifecycle = { enabled: true, rolledFrom: null, rolledTo: null, predecessorGraceMs: null, lastFour: "" };
  return {
    ...lifecycle,
    id: "portal",
    customerId: s.customerId,
    instanceId: s.instanceId,
    name: "portal session",
    prefix: "portal",
    environment: "live",
    scopes: s.scopes,
    metadata: {},
    digest: "",
    lastUsedAt: null,
    totalRequests: 0,
    expiresAt: s.expiresAt,
    createdAt: s.createdAt,
    updatedAt: s.createdAt,
    revokedAt: null,
  } as KeyRecord;
}

/** A portal's "back" link: an absolute http(s) URL (never `javascript:` and the like), or none. */
export function validReturnUrl(value: string): string | null {
  if (value === "") return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid("return_url must be an absolute http or https URL");
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || value.length > 2048) {
    throw invalid("return_url must be an absolute http or https URL of at most 2048 characters");
  }
  return url.toString();
}
