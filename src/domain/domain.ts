import type { Logger } from "pino";
import type { Store } from "./store.js";
import { AuditLog } from "./audit-log.js";
import { AuditRetention, type AuditRetentionOptions } from "./audit-retention.js";
import { Authenticator } from "./authenticator.js";
import { KeyCache, type KeyCacheOptions } from "./key-cache.js";
import { Idempotency, type IdempotencyOptions } from "./idempotency.js";
import { KeyImporter } from "./import-keys.js";
import { KeyManager } from "./key-manager.js";
import { KeyRoller } from "./roll.js";
import { RateLimiter } from "./rate-limit/rate-limiter.js";
import type { RateLimitPolicy } from "./types.js";
import { UsageRecorder } from "./usage-recorder.js";
import { type SessionOptions, Sessions } from "./sessions.js";
import { UsageReports } from "./usage-reports.js";

/** Dashboard session defaults (config.ts can change each). */
export const DEFAULT_SESSIONS: SessionOptions = { ttlMs: 12 * 3_600_000, idleMs: 30 * 60_000, maxPerSubject: 10, portalTtlMs: 5 * 60_000 };

export interface DomainOptions {
  rateLimit: RateLimitPolicy;
  /** How long a process keeps unused reserved rate-limit tokens (rate-limit/reserves.ts); 0 = no reserves. */
  rateLimitReserveMs: number;
  usageFlushIntervalMs: number;
  auditFlushIntervalMs: number;
  auditAggregateIntervalMs: number;
  /** Aggregation interval of known-key failures (<= 1000 ms, SPEC §7). */
  auditFailureIntervalMs: number;
  auditRetention: AuditRetentionOptions;
  keyCache: KeyCacheOptions;
  sessions?: SessionOptions;
  /** Most active keys per customer (MAX_ACTIVE_KEYS_PER_CUSTOMER). */
  maxActiveKeysPerCustomer: number;
  /** Registered prefixes of imported checksum-less keys (IMPORT_PREFIXES). */
  importPrefixes?: readonly string[];
  idempotency?: Partial<IdempotencyOptions>;
  now?: () => number;
  /** Outcome hooks for metrics. */
  observe?: { auth?: (outcome: string) => void; rateLimit?: (allowed: boolean) => void };
}

/**
 * The domain, assembled over one store. Background writers (usage, audit) start with `start()`
 * and are flushed by `flush()`, which shutdown calls after the last request has finished.
 */
export function createDomain(store: Store, opts: DomainOptions, log: Logger) {
  const now = opts.now ?? Date.now;
  const audit = new AuditLog(store, now, {
    flushIntervalMs: opts.auditFlushIntervalMs,
    aggregateIntervalMs: opts.auditAggregateIntervalMs,
    failureIntervalMs: opts.auditFailureIntervalMs,
    maxAggregates: 10_000,
  }, log);
  const retention = new AuditRetention(store, now, opts.auditRetention, log);
  const usage = new UsageRecorder(store, opts.usageFlushIntervalMs, log);
  const rateLimiter = new RateLimiter(store, audit, now, log, {
    defaults: opts.rateLimit,
    reserveMs: opts.rateLimitReserveMs,
    observe: opts.observe?.rateLimit,
  });
  const cache = new KeyCache(store, opts.keyCache, now, log);
  const importPrefixes = opts.importPrefixes ?? [];
  let sessions: Sessions | null = null;
  const onChanged = (key: { digest: string; id?: string; revokedAt?: number | null; enabled?: boolean }) => {
    cache.invalidate(key.digest);
    // A revoked (or disabled) key's dashboard sessions end at once, on every process.
    if (key.id && (key.revokedAt != null || key.enabled === false)) {
      void sessions?.endSessionsOfKey(key.id).catch((err: unknown) => log.warn({ err }, "ending the sessions of a key failed"));
    }
  };
  let roller: KeyRoller | null = null;
  const authenticator = new Authenticator(cache.lookup, rateLimiter, audit, usage, now, opts.observe?.auth,
    (key) => roller?.onFirstUse(key), importPrefixes);
  const keys = new KeyManager(store, audit, usage, now, onChanged, opts.maxActiveKeysPerCustomer);
  roller = new KeyRoller(store, keys, audit, now, onChanged);
  const importer = new KeyImporter(store, audit, now, importPrefixes, onChanged, (c, n, at) => keys.requireRoomFor(c, n, at));
  const idempotency = new Idempotency(store, now, {
    ttlMs: 24 * 3600_000,
    leaseMs: 30_000,
    purgeIntervalMs: 60_000,
    ...opts.idempotency,
  }, log);
  sessions = new Sessions(store, cache.lookup, now, opts.sessions ?? DEFAULT_SESSIONS);
  return {
    store,
    audit,
    retention,
    usage,
    rateLimiter,
    cache,
    authenticator,
    keys,
    sessions,
    usageReports: new UsageReports(store, now),
    roller,
    importer,
    idempotency,
    now,
    start() {
      idempotency.start();
      audit.start();
      retention.start();
      usage.start();
      cache.start();
      rateLimiter.start();
    },
    async flush() {
      idempotency.stop();
      audit.stop();
      await retention.stop();
      usage.stop();
      await cache.stop();
      await rateLimiter.stop();
      await usage.flush();
      await audit.flush();
    },
  };
}

export type Domain = ReturnType<typeof createDomain>;
