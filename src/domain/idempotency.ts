import { createCipheriv, createDecipheriv, hash, hkdfSync, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { IdempotencyRecord, Store } from "./store.js";
import { ApiError, idempotencyConflict, invalid } from "./errors.js";
import type { Prepared } from "./key-manager.js";

export interface IdempotencyOptions {
  /** How long an answer is replayed (Stripe: 24 h). */
  ttlMs: number;
  /** A call holding a record longer than this is presumed dead (kill -9) and may be taken over. */
  leaseMs: number;
  /** How often expired records are purged. */
  purgeIntervalMs: number;
}

/** 1-255 printable ASCII characters (issue 13). */
const HEADER_PATTERN = /^[\x20-\x7e]{1,255}$/;

export function validIdempotencyKey(value: string): string {
  if (!HEADER_PATTERN.test(value)) throw invalid("Idempotency-Key must be 1-255 printable ASCII characters");
  return value;
}

/**
 * `Idempotency-Key` on IssueKey, BatchIssueKeys and RollKey, with Stripe's semantics (issue 13):
 * the first answer is replayed for 24 h to a retry in the same scope (a customer's keys share
 * one; each internal caller has its own) with the same key and the same parameters; other
 * parameters are 409 `idempotency_conflict`, and so is a retry while the first call still runs
 * (retryable: `retry-after`).
 *
 * At rest nothing is readable: the record's id is SHA-256(scope, idempotency key), so the key itself
 * is never stored, and the answer (which holds the new secrets) is AES-256-GCM-encrypted under a
 * key derived by HKDF-SHA256 from the idempotency key, with the record id as associated data. A
 * copy of the database without the idempotency keys reveals no secret. (The protection is as
 * strong as the idempotency keys are unguessable: use random ones, e.g. UUIDs, as Stripe advises.)
 *
 * Crash safety: the answer is computed and stored (state `prepared`, with the ids of the keys it
 * creates) BEFORE the write, then the write, then `done`. A retry that finds a `prepared` record
 * whose holder died (lease over) looks the keys up: present → the write happened, the stored answer
 * is replayed; absent → the write never happened and the call runs afresh.
 */
export class Idempotency {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly opts: IdempotencyOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    const purge = () =>
      void this.store.purgeIdempotency(this.now()).catch((err: unknown) => this.log.warn({ err }, "idempotency purge failed"));
    purge();
    this.timer = setInterval(purge, this.opts.purgeIntervalMs).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Runs `prepare` then its commit, or replays the stored answer. `key` null: no idempotency.
   * `params` is a canonical encoding of the request; `customerId` the customer acted for.
   */
  async run(
    scope: string,
    customerId: string,
    key: string | null,
    params: string,
    prepare: () => Promise<Prepared<Uint8Array>>,
  ): Promise<Uint8Array> {
    if (key === null) {
      const p = await prepare();
      await p.commit();
      return p.result;
    }
    validIdempotencyKey(key);
    const id = hash("sha256", `zpk-idempotency\0${scope}\0${key}`, "hex");
    const paramsDigest = hash("sha256", params, "hex");
    const owner = randomBytes(16).toString("hex");
    for (let attempt = 0; ; attempt++) {
      if (attempt > 3) throw conflictRunning();
      const now = this.now();
      const existing = await this.store.claimIdempotency({
        id, scope, customerId, paramsDigest, owner, state: "pending", response: null, keyIds: [],
        createdAt: now, leaseUntil: now + this.opts.leaseMs, expiresAt: now + this.opts.ttlMs,
      });
      if (existing === null) break;
      if (existing.expiresAt <= now) {
        await this.store.deleteIdempotency(id, existing.owner);
        continue;
      }
      if (existing.paramsDigest !== paramsDigest) {
        throw idempotencyConflict("this Idempotency-Key was used with other parameters; use a new key for a new request");
      }
      const replay = await this.settled(existing, key, now);
      if (replay) return replay;
      if (replay === null) continue; // the record was dropped: claim it afresh
      throw conflictRunning();
    }
    let prepared: Prepared<Uint8Array>;
    try {
      prepared = await prepare();
      await this.store.updateIdempotency(id, owner, {
        state: "prepared", response: seal(key, id, prepared.result), keyIds: prepared.keyIds,
      });
    } catch (e) {
      await this.store.deleteIdempotency(id, owner).catch(() => {});
      throw e;
    }
    try {
      await prepared.commit();
    } catch (e) {
      // Refused (not a fault): nothing was written, so a retry runs afresh. After a storage fault
      // the write may or may not have happened: the record stays, and a retry after the lease
      // finds out from the keys.
      if (e instanceof ApiError && e.code !== "unavailable" && e.code !== "internal") {
        await this.store.deleteIdempotency(id, owner).catch(() => {});
      }
      throw e;
    }
    await this.store.updateIdempotency(id, owner, { state: "done" }).catch((err: unknown) =>
      this.log.warn({ err }, "idempotency record not marked done; a retry will check the keys"),
    );
    return prepared.result;
  }

  /**
   * For an existing record with the same parameters: the answer to replay, `null` when the record
   * was abandoned and dropped (run afresh), or `undefined` while its call is still running.
   */
  private async settled(r: IdempotencyRecord, key: string, now: number): Promise<Uint8Array | null | undefined> {
    if (r.state === "done" && r.response) return open(key, r.id, r.response);
    if (r.leaseUntil > now) return undefined;
    if (r.state === "prepared" && r.response && r.keyIds.length > 0) {
      const written = await this.store.findKey(r.customerId, r.keyIds[0]!);
      if (written) {
        await this.store.updateIdempotency(r.id, r.owner, { state: "done" });
        return open(key, r.id, r.response);
      }
    }
    await this.store.deleteIdempotency(r.id, r.owner);
    return null;
  }
}

const conflictRunning = () =>
  idempotencyConflict("a request with this Idempotency-Key is still in progress; retry shortly", { "retry-after": "1" });

/** AES-256-GCM under HKDF-SHA256(idempotency key, salt = record id); layout: iv(12) | tag(16) | ciphertext. */
function seal(key: string, id: string, plain: Uint8Array): Uint8Array {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", derive(key, id), iv);
  cipher.setAAD(Buffer.from(id));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function open(key: string, id: string, sealed: Uint8Array): Uint8Array {
  const buf = Buffer.from(sealed);
  const decipher = createDecipheriv("aes-256-gcm", derive(key, id), buf.subarray(0, 12));
  decipher.setAAD(Buffer.from(id));
  decipher.setAuthTag(buf.subarray(12, 28));
  return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]);
}

const derive = (key: string, id: string) => Buffer.from(hkdfSync("sha256", key, id, "zpk idempotency response v1", 32));
