import type { Logger } from "pino";
import type { Store } from "./store.js";
import { AuditLog } from "./audit-log.js";
import { Authenticator } from "./authenticator.js";
import { KeyCache, type KeyCacheOptions } from "./key-cache.js";
import { KeyManager } from "./key-manager.js";
import { RateLimitLeases } from "./rate-limit-leases.js";
import { RateLimiter } from "./rate-limiter.js";
import type { RateLimitPolicy } from "./types.js";
import { UsageRecorder } from "./usage-recorder.js";

export interface DomainOptions {
  rateLimit: RateLimitPolicy;
  /** How long a process keeps reserved rate-limit tokens (rate-limit-leases.ts); 0 = no reserves. */
  rateLimitLeaseMs: number;
  usageFlushIntervalMs: number;
  auditFlushIntervalMs: number;
  auditAggregateIntervalMs: number;
  keyCache: KeyCacheOptions;
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
  const leases = new RateLimitLeases(store, opts.rateLimit, now, { leaseMs: opts.rateLimitLeaseMs }, log);
  const rateLimiter = new RateLimiter(store, leases, opts.rateLimit, audit, now, opts.observe?.rateLimit);
  const cache = new KeyCache(store, opts.keyCache, now, log);
  const authenticator = new Authenticator(cache.lookup, rateLimiter, audit, usage, now, opts.observe?.auth);
  const keys = new KeyManager(store, audit, usage, now, (key) => cache.invalidate(key.digest));
  return {
    store,
    audit,
    usage,
    rateLimiter,
    cache,
    authenticator,
    keys,
    now,
    start() {
      audit.start();
      usage.start();
      cache.start();
      leases.start();
    },
    async flush() {
      audit.stop();
      usage.stop();
      await cache.stop();
      await leases.stop();
      await usage.flush();
      await audit.flush();
    },
  };
}

export type Domain = ReturnType<typeof createDomain>;
