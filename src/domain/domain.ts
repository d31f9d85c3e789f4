import type { Logger } from "pino";
import type { Store } from "./store.js";
import { AuditLog } from "./audit-log.js";
import { Authenticator } from "./authenticator.js";
import { KeyCache, type KeyCacheOptions } from "./key-cache.js";
import { KeyManager } from "./key-manager.js";
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
  keyCache: KeyCacheOptions;
  sessions?: SessionOptions;
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
    maxAggregates: 10_000,
  }, log);
  const usage = new UsageRecorder(store, opts.usageFlushIntervalMs, log);
  const rateLimiter = new RateLimiter(store, audit, now, log, {
    defaults: opts.rateLimit,
    reserveMs: opts.rateLimitReserveMs,
    observe: opts.observe?.rateLimit,
  });
  const cache = new KeyCache(store, opts.keyCache, now, log);
  const authenticator = new Authenticator(cache.lookup, rateLimiter, audit, usage, now, opts.observe?.auth);
  const sessions = new Sessions(store, cache.lookup, now, opts.sessions ?? DEFAULT_SESSIONS);
  const keys = new KeyManager(store, audit, usage, now, (key) => {
    cache.invalidate(key.digest);
    // A revoked (or disabled) key's dashboard sessions end at once, on every process.
    if (key.revokedAt !== null || (key as { enabled?: boolean }).enabled === false) {
      void sessions.endSessionsOfKey(key.id).catch((err: unknown) => log.warn({ err }, "ending the sessions of a key failed"));
    }
  });
  return {
    store,
    audit,
    usage,
    rateLimiter,
    cache,
    authenticator,
    keys,
    sessions,
    usageReports: new UsageReports(store, now),
    now,
    start() {
      audit.start();
      usage.start();
      cache.start();
      rateLimiter.start();
    },
    async flush() {
      audit.stop();
      usage.stop();
      await cache.stop();
      await rateLimiter.stop();
      await usage.flush();
      await audit.flush();
    },
  };
}

export type Domain = ReturnType<typeof createDomain>;
