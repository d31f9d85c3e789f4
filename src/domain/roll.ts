import type { Store } from "./store.js";
import { customerFor, requireCanActOn, requireScope } from "./access.js";
import type { AuditLog } from "./audit-log.js";
import { failedPrecondition, invalid, notFound } from "./errors.js";
import { newKeyId } from "./ids.js";
import { generateKey } from "./key-format.js";
import type { KeyManager, Prepared } from "./key-manager.js";
import { SCOPE } from "./scopes.js";
import { isExpired, newKeyRecord, type Caller, type KeyRecord, type RequestOrigin } from "./types.js";
import { validFutureTime } from "./validation.js";

/** Issue 13's fixed rules: default one day, at most 30 days (accepted), 0 = at once. */
export const GRACE = { defaultSeconds: 86_400, maxSeconds: 2_592_000 } as const;

export type GraceStarts = "now" | "first_use";

/** A roll request as the RPC carries it (validated here). */
export interface RollInput {
  /** Null: the default. */
  graceSeconds: number | null;
  /** "now", "first_use", or "" for the default (now). */
  graceStarts: string;
  /** Expiry of the new key; null: none. */
  expiresAt: number | null;
}

export function validGraceSeconds(value: number | null): number {
  if (value === null) return GRACE.defaultSeconds;
  if (!Number.isInteger(value) || value < 0 || value > GRACE.maxSeconds) {
    throw invalid(`grace_seconds must be an integer from 0 to ${GRACE.maxSeconds} (30 days)`);
  }
  return value;
}

export function validGraceStarts(value: string): GraceStarts {
  if (value === "" || value === "now") return "now";
  if (value === "first_use") return "first_use";
  throw invalid(`grace_starts must be "now" or "first_use"`);
}

/**
 * RollKey (issue 13): the successor copies the old key's name, scopes, binding, environment and
 * metadata; the old key keeps working until min(its own expiry, start + grace), where start is now
 * or — `first_use` — the successor's first successful authentication (Authenticator calls
 * `onFirstUse`). The store makes the roll one all-or-nothing write that refuses a key rolled,
 * revoked or re-expired in the meantime (a compare-and-set on the old key).
 */
export class KeyRoller {
  /** Successors whose first use this process has already passed on to the store. */
  private readonly started = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly keys: KeyManager,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    private readonly onChanged: (key: KeyRecord) => void,
  ) {}

  async prepareRoll(
    caller: Caller,
    requestedCustomer: string,
    id: string,
    input: RollInput,
    origin: RequestOrigin,
  ): Promise<Prepared<{ key: KeyRecord; secret: string }>> {
    const customerId = customerFor(caller, requestedCustomer);
    const grace = validGraceSeconds(input.graceSeconds) * 1000;
    const graceStarts = validGraceStarts(input.graceStarts);
    requireScope(caller, SCOPE.keysWrite);
    const now = this.now();
    if (input.expiresAt !== null) validFutureTime(input.expiresAt, now);
    const old = await this.keys.visible(caller, customerId, id);
    requireCanActOn(caller, old, "roll");
    rollable(old, now);
    const generated = generateKey(old.environment);
    // The old key's name, scopes, binding, environment and metadata; its own id, secret, times.
    const successor = newKeyRecord(
      {
        id: newKeyId(now),
        customerId: old.customerId,
        instanceId: old.instanceId,
        name: old.name,
        prefix: generated.prefix,
        environment: old.environment,
        scopes: old.scopes,
        metadata: old.metadata,
        digest: generated.digest,
        expiresAt: input.expiresAt,
        lastFour: generated.secret.slice(-4),
        rolledFrom: old.id,
        predecessorGraceMs: graceStarts === "first_use" ? grace : null,
      },
      now,
    );
    const cutoff = graceStarts === "now" ? now + grace : null;
    const oldExpiresAt = cutoff === null ? old.expiresAt : old.expiresAt === null ? cutoff : Math.min(old.expiresAt, cutoff);
    const rolled = { ...old, rolledTo: successor.id, expiresAt: oldExpiresAt, updatedAt: now };
    // The roll is ONE event (issue 13): target the old key, related_key_id the new one.
    const events = [this.audit.build({ ...this.keys.success("api_key.rolled", caller, old, origin), relatedKeyId: successor.id })];
    return {
      result: { key: successor, secret: generated.secret },
      keyIds: [successor.id],
      commit: async () => {
        const done = await this.store.rollKey(
          successor,
          { expectExpiresAt: old.expiresAt, expiresAt: oldExpiresAt, updatedAt: now },
          events,
        );
        if (!done) {
          // Changed since we read it: say why, as a fresh read shows it.
          const current = await this.store.findKey(customerId, id);
          if (!current) throw notFound();
          rollable(current, this.now());
          throw failedPrecondition(`key ${id} changed while it was being rolled; retry`);
        }
        this.onChanged(rolled);
      },
    };
  }

  /**
   * Called on every successful authentication of a key with `predecessorGraceMs` set: the first one
   * starts its predecessor's grace. Once per process; the store makes repeats from other processes
   * no-ops, and the changed `updated_at` makes every process's cache drop both keys.
   */
  onFirstUse(key: KeyRecord): void {
    if (key.predecessorGraceMs === null || this.started.has(key.id)) return;
    this.started.add(key.id);
    if (this.started.size > 10_000) this.started.clear(); // bound; a repeat is a harmless no-op
    const at = this.now();
    void this.store.startPredecessorGrace(key, at).then(
      () => {
        this.onChanged({ ...key, predecessorGraceMs: null });
        if (key.rolledFrom) void this.store.findKey(key.customerId, key.rolledFrom).then((p) => p && this.onChanged(p), () => {});
      },
      () => this.started.delete(key.id), // try again on the next use
    );
  }
}

/** Refuses what cannot be rolled (issue 13): revoked, expired, disabled or already rolled. */
function rollable(k: KeyRecord, now: number): void {
  if (k.revokedAt !== null) throw failedPrecondition(`key ${k.id} is revoked and cannot be rolled`);
  if (isExpired(k, now)) throw failedPrecondition(`key ${k.id} has expired and cannot be rolled`);
  if (k.rolledTo !== null) throw failedPrecondition(`key ${k.id} was already rolled to ${k.rolledTo}`);
  if (!k.enabled) throw failedPrecondition(`key ${k.id} is disabled: enable it before rolling it`);
}
