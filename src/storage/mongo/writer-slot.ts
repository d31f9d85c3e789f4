import { randomBytes } from "node:crypto";
import { type Collection, MongoError } from "mongodb";

/** A claimed writer slot: `_id` is the slot number, `holder` the claiming process, `until` its lease's end. */
export interface WriterSlotDoc {
  _id: number;
  holder: string;
  until: Date;
}

/** How long a claim lasts without renewal: a process that crashed frees its slot this long after. */
export const WRITER_LEASE_MS = 60_000;
/** More slots than this are never claimed: as many processes on one database at once is a fault. */
export const WRITER_SLOTS_MAX = 4096;

/**
 * The name this process writes its usage documents under (`<key id>:w<slot>`): a small number that
 * no two live processes hold at once, and that the next process takes over once its holder has
 * stopped. A key's usage documents are therefore bounded by the most processes that ever ran at
 * the same time, not by every start there ever was (a random name per start left one more document
 * per key and start, which every listing of the key read and summed).
 *
 * A slot is claimed by a unique insert of `{_id: slot}` in `usage_writers` (the lowest slot free or
 * whose lease ended), held by renewing its lease every third of WRITER_LEASE_MS, and released on
 * close. Only the unique insert decides between two claimants (FerretDB 1.24's conditional updates
 * are not atomic, see docs/mongodb.md). A process that finds its lease lapsed (paused longer than
 * the lease, or its slot taken over) claims a slot again before it writes.
 */
export class WriterSlot {
  private readonly holder = randomBytes(8).toString("hex");
  private slot: number | null = null;
  /** The lease's end as this process last wrote it. */
  private until = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The renewal under way: the timer's and a write's never run at once (two claims would take two slots). */
  private renewing: Promise<void> | null = null;

  constructor(
    private readonly slots: Collection<WriterSlotDoc>,
    private readonly leaseMs = WRITER_LEASE_MS,
  ) {}

  /** The writer name to write under now, claiming or renewing the slot first when needed. */
  async name(now = Date.now()): Promise<string> {
    // Renewed well before the end, so a write is never made under a lease about to lapse.
    if (this.slot === null || now >= this.until - this.leaseMs / 3) await this.renew(now);
    return `w${this.slot}`;
  }

  /** Starts renewing the lease in the background (unref'd), after a first claim. */
  async start(): Promise<void> {
    await this.renew(Date.now());
    this.timer = setInterval(() => void this.renew(Date.now()).catch(() => {}), this.leaseMs / 3).unref();
  }

  /** Stops renewing and frees the slot (if still ours) for the next process. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.renewing?.catch(() => {}); // a claim under way would otherwise take a slot after this
    if (this.slot === null) return;
    const slot = this.slot;
    this.slot = null;
    await this.slots.deleteOne({ _id: slot, holder: this.holder });
  }

  private renew(now: number): Promise<void> {
    this.renewing ??= this.renewNow(now).finally(() => (this.renewing = null));
    return this.renewing;
  }

  private async renewNow(now: number): Promise<void> {
    const until = new Date(now + this.leaseMs);
    if (this.slot !== null) {
      const r = await this.slots.updateOne({ _id: this.slot, holder: this.holder }, { $set: { until } });
      if (r.matchedCount === 1) {
        this.until = until.getTime();
        return;
      }
      this.slot = null; // taken over while this process was not renewing
    }
    this.slot = await this.claim(now, until);
    this.until = until.getTime();
  }

  private async claim(now: number, until: Date): Promise<number> {
    for (let slot = 0; slot < WRITER_SLOTS_MAX; slot++) {
      if (await this.insert(slot, until)) return slot;
      // Held: free it only if its lease has ended, then race for it by the same unique insert.
      const freed = await this.slots.deleteOne({ _id: slot, until: { $lt: new Date(now) } });
      if (freed.deletedCount === 1 && (await this.insert(slot, until))) return slot;
    }
    throw new Error(`all ${WRITER_SLOTS_MAX} usage writer slots are held`);
  }

  private async insert(slot: number, until: Date): Promise<boolean> {
    try {
      await this.slots.insertOne({ _id: slot, holder: this.holder, until });
      return true;
    } catch (e) {
      if (e instanceof MongoError && e.code === 11000) return false;
      throw e;
    }
  }
}
