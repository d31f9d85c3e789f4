import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import type { Store } from "./store.js";
import type { KeyLookup } from "./authenticator.js";
import { DigestSet } from "./digest-set.js";
import { keyRecordBytes } from "./key-record-bytes.js";
import type { KeyRecord } from "./types.js";

export interface KeyCacheOptions {
  /** Known keys kept in memory, at most (a backstop: the byte bound below is the one that binds). */
  maxKeys: number;
  /**
   * Heap the known keys may take, estimated per entry by keyRecordBytes (1.4 KiB for a bare key,
   * ~51 KiB for one with the largest scopes and metadata; bench/key-cache-bytes.ts measures it).
   */
  maxBytes: number;
  /** Unknown digests remembered (16 B each, digest-set.ts), so a flood of unknown keys stays off the store. */
  maxUnknown: number;
  /** Longest an entry is trusted without a poll confirming it (a backstop, not the bound). */
  ttlMs: number;
  /** How often the store is asked which keys changed: the cross-process revocation bound. */
  pollIntervalMs: number;
}

/** Polls re-read this much history, so a write committed just before a poll is never missed. */
const POLL_OVERLAP_MS = 5_000;

/**
 * The hot path's key lookup (SPEC §5): digest -> key record from memory, with a bounded LRU of
 * known keys and a bounded set of unknown digests. Coherence: this process invalidates at once what it
 * changes itself (`invalidate`), and every `pollIntervalMs` asks the store for keys whose
 * `updated_at` moved (an indexed range query; no change streams), so a revocation or update made
 * by any other process or replica takes effect here within pollIntervalMs + one query. Expiry
 * needs no invalidation: it is checked against the clock on every use.
 */
export class KeyCache {
  private readonly known: LRUCache<string, KeyRecord>;
  private readonly unknown: DigestSet;
  private invalidations = 0;
  private lastPollStart: number;
  private timer: NodeJS.Timeout | null = null;
  /** The poll under way, if any: stop() waits for it, so no query outlives the store. */
  private polling: Promise<void> | null = null;
  hits = 0;
  misses = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: KeyCacheOptions,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.known = new LRUCache({ max: opts.maxKeys, maxSize: opts.maxBytes, sizeCalculation: keyRecordBytes, ttl: opts.ttlMs });
    this.unknown = new DigestSet(opts.maxUnknown, opts.ttlMs, now);
    this.lastPollStart = now();
  }

  readonly lookup: KeyLookup = async (digest) => {
    const hit = this.known.get(digest);
    if (hit) {
      this.hits++;
      return hit;
    }
    if (this.unknown.has(digest)) {
      this.hits++;
      return null;
    }
    this.misses++;
    const generation = this.invalidations;
    const record = await this.store.findKeyByDigest(digest);
    // An invalidation that raced with this read may have been for this key: do not cache it.
    if (generation === this.invalidations) {
      if (record) this.known.set(digest, record);
      else this.unknown.add(digest);
    }
    return record;
  };

  invalidate(digest: string): void {
    this.invalidations++;
    this.known.delete(digest);
    this.unknown.delete(digest);
  }

  get size(): { known: number; unknown: number; knownBytes: number } {
    return { known: this.known.size, unknown: this.unknown.size, knownBytes: this.known.calculatedSize };
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.opts.pollIntervalMs).unref();
  }

  /** Stops polling; resolves once a poll already under way has ended (before the store closes). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }

  /** Drops every key that changed anywhere since the last poll (with overlap). */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = null));
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const started = this.now();
    try {
      const changed = await this.store.changedKeyDigests(this.lastPollStart - POLL_OVERLAP_MS);
      for (const digest of changed) this.invalidate(digest);
      this.lastPollStart = started;
    } catch (err) {
      // Cannot confirm the cache: drop it, so nothing stale outlives the bound.
      this.log.warn({ err }, "key change poll failed; clearing the key cache");
      this.invalidations++;
      this.known.clear();
      this.unknown.clear();
    }
  }
}
