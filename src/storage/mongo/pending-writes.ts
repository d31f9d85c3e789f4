import type { Collection } from "mongodb";
import type { AuditDoc, KeyDoc, PendingWriteDoc } from "./documents.js";

/**
 * A multi-document write in progress is presumed dead (its process killed) after this long; far
 * above what one batch of 100 inserts takes. Until then a reader treats it as still running.
 */
export const PENDING_WRITE_MAX_MS = 30_000;

/**
 * All-or-nothing writes of several keys without transactions (SPEC §8: none on FerretDB), for
 * batch issue, import and roll (issue 13). The protocol:
 *
 * 1. a `pending_writes` document lists the key and event ids of the write (state `pending`);
 * 2. the keys are inserted with `pending_write: <its id>` — every reader (Authenticate, list,
 *    count, get) ignores such keys, so a half-inserted batch is invisible — then the events;
 * 3. the commit point is ONE single-document write: a batch flips its document to `committed`; a
 *    roll sets the predecessor's `rolled_to` (a compare-and-set that also refuses a second roll);
 * 4. the markers are cleared and the `pending_writes` document deleted.
 *
 * A process killed anywhere leaves either no commit (the keys stay invisible; `settle` deletes them
 * and their events once the write is older than PENDING_WRITE_MAX_MS) or a commit whose markers are
 * not cleared yet (`settle` clears them: rolled forward). `settle` runs on every write document at
 * start-up and periodically, and on a key found by id still carrying a marker.
 */
export class PendingWrites {
  constructor(
    private readonly pending: Collection<PendingWriteDoc>,
    private readonly keys: Collection<KeyDoc>,
    private readonly events: Collection<AuditDoc>,
  ) {}

  async begin(doc: Omit<PendingWriteDoc, "state" | "created">): Promise<void> {
    await this.pending.insertOne({ ...doc, state: "pending", created: new Date() });
  }

  async commitBatch(id: string): Promise<void> {
    await this.pending.updateOne({ _id: id }, { $set: { state: "committed" } });
  }

  /** After the commit point: makes the keys visible and forgets the write. */
  async finish(id: string, keyIds: string[]): Promise<void> {
    await this.keys.updateMany({ _id: { $in: keyIds }, pending_write: id }, { $set: { pending_write: null } });
    await this.pending.deleteOne({ _id: id });
  }

  /** Undoes a write that did not reach its commit point. */
  async abort(doc: Pick<PendingWriteDoc, "_id" | "key_ids" | "event_ids">): Promise<void> {
    await this.keys.deleteMany({ _id: { $in: doc.key_ids }, pending_write: doc._id });
    if (doc.event_ids.length) await this.events.deleteMany({ _id: { $in: doc.event_ids } });
    await this.pending.deleteOne({ _id: doc._id });
  }

  /** Rolls a write forward (committed), back (dead and not committed), or leaves it (running). */
  async settle(id: string, now = Date.now()): Promise<"committed" | "aborted" | "running"> {
    const doc = await this.pending.findOne({ _id: id });
    if (!doc) {
      // Already settled by another process: committed iff its keys are still there.
      return "aborted";
    }
    let committed = doc.state === "committed";
    if (!committed && doc.kind === "roll" && doc.predecessor_id) {
      const predecessor = await this.keys.findOne({ _id: doc.predecessor_id }, { projection: { rolled_to: 1 } });
      committed = predecessor?.rolled_to === doc.key_ids[0];
    }
    if (committed) {
      await this.finish(doc._id, doc.key_ids);
      return "committed";
    }
    if (doc.created.getTime() <= now - PENDING_WRITE_MAX_MS) {
      await this.abort(doc);
      return "aborted";
    }
    return "running";
  }

  /** Settles every write document (start-up and periodically). */
  async recover(): Promise<void> {
    for (const doc of await this.pending.find({}, { projection: { _id: 1 } }).toArray()) {
      await this.settle(doc._id);
    }
  }
}
