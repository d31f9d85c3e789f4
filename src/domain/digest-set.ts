/** Entries per set: a digest can live in any of the WAYS slots of its set. */
const WAYS = 8;

/**
 * A bounded set of key digests (SHA-256, hex) with a time to live: the negative cache, which a
 * flood of unknown keys fills and churns at full request rate. An LRU of strings made every
 * flooded key a long-lived allocation, so the old generation grew in a sawtooth of ~45 MB and RSS
 * did not stay flat; here the table is three typed arrays allocated once (16 bytes an entry), and
 * inserting allocates nothing that outlives the call.
 *
 * Layout: 8-way set-associative. A digest's set comes from its first 32 bits and it is stored as
 * the next 64 bits; a full set evicts its oldest entry (FIFO within the set, close to LRU for a
 * uniform flood). Two different digests match only if they fall in the same set and 64 further
 * bits agree: for "is this digest known to be unknown?" a false yes for a real key has probability
 * ~ 8 / 2^64 per lookup (8 slots of the set).
 */
export class DigestSet {
  private readonly sets: number;
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  /** When each slot was filled (epoch ms); 0 = empty. */
  private readonly at: Float64Array;
  private filled = 0;

  constructor(
    capacity: number,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    this.sets = Math.max(1, Math.ceil(capacity / WAYS));
    this.hi = new Uint32Array(this.sets * WAYS);
    this.lo = new Uint32Array(this.sets * WAYS);
    this.at = new Float64Array(this.sets * WAYS);
  }

  /** Slots in use (expired entries count until they are reused); at most the capacity rounded up to a multiple of 8. */
  get size(): number {
    return this.filled;
  }

  has(digest: string): boolean {
    return this.find(digest, this.now()) >= 0;
  }

  add(digest: string): void {
    const now = this.now();
    const base = this.baseOf(digest);
    const hi = word(digest, 8);
    const lo = word(digest, 16);
    if (this.slot(base, hi, lo, now) >= 0) return;
    let victim = base;
    for (let i = base; i < base + WAYS; i++) {
      if (this.at[i] === 0) {
        victim = i;
        break;
      }
      if (this.at[i]! < this.at[victim]!) victim = i;
    }
    if (this.at[victim] === 0) this.filled++;
    this.hi[victim] = hi;
    this.lo[victim] = lo;
    this.at[victim] = Math.max(now, 1);
  }

  delete(digest: string): void {
    const i = this.find(digest, Number.NEGATIVE_INFINITY);
    if (i < 0) return;
    this.at[i] = 0;
    this.filled--;
  }

  clear(): void {
    this.at.fill(0);
    this.filled = 0;
  }

  /** The slot holding `digest`, or -1; entries older than the TTL at `now` do not count. */
  private find(digest: string, now: number): number {
    return this.slot(this.baseOf(digest), word(digest, 8), word(digest, 16), now);
  }

  private slot(base: number, hi: number, lo: number, now: number): number {
    for (let i = base; i < base + WAYS; i++) {
      const at = this.at[i]!;
      if (at !== 0 && this.hi[i] === hi && this.lo[i] === lo && now - at < this.ttlMs) return i;
    }
    return -1;
  }

  /** A digest's set, from its first 32 bits, as the index of the set's first slot. */
  private baseOf(digest: string): number {
    return (word(digest, 0) % this.sets) * WAYS;
  }
}

/** 32 bits of a hex digest, from character `offset`. */
const word = (hex: string, offset: number) => Number.parseInt(hex.substring(offset, offset + 8), 16) >>> 0;
