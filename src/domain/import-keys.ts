import type { Store } from "./store.js";
import type { AuditLog } from "./audit-log.js";
import { forbidden, invalid } from "./errors.js";
import { newKeyId } from "./ids.js";
import { digestKey, type Environment, parseKey } from "./key-format.js";
import { actorOf, customerFor } from "./access.js";
import { inEntry, MAX_BATCH, targetOf } from "./key-manager.js";
import { optionalUuid, validEnvironment, validMetadata, validName, validScopes } from "./validation.js";
import { newKeyRecord, type Caller, type KeyRecord, type RequestOrigin } from "./types.js";
import { validFutureTime } from "./validation.js";
import { isLegacyImport } from "./authenticator.js";

/** One key to import, as the RPC carries it ("" = not given); validated here. */
export interface ImportInput {
  name: string;
  instanceId: string;
  scopes: string[];
  expiresAt: number | null;
  environment: string;
  metadata: Record<string, string>;
  sha256: string;
  plaintext: string;
  prefix: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * ImportKeys (issue 13, internal callers only): adopts a platform's existing keys by SHA-256 digest
 * or plaintext (hashed here; the plaintext goes no further than this function). All or nothing, like
 * a batch; a digest that exists already is `already_exists` and nothing is written. One
 * `api_key.imported` event per key.
 */
export class KeyImporter {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    /** IMPORT_PREFIXES: the operator's registered prefixes of checksum-less keys. */
    private readonly importPrefixes: readonly string[],
    /** This process's cache may remember an imported digest as unknown (it was presented before): drop it. */
    private readonly onChanged: (key: KeyRecord) => void = () => {},
    /** The per-customer active-key bound (KeyManager.requireRoomFor): imports count like issues. */
    private readonly requireRoom: (customerId: string, n: number, now: number) => Promise<void> = async () => {},
  ) {}

  async import(caller: Caller, requestedCustomer: string, inputs: ImportInput[], origin: RequestOrigin): Promise<KeyRecord[]> {
    if (caller.kind !== "internal") throw forbidden("ImportKeys is for internal services");
    const customerId = customerFor(caller, requestedCustomer);
    if (inputs.length === 0 || inputs.length > MAX_BATCH) throw invalid(`keys must have 1-${MAX_BATCH} entries`);
    const now = this.now();
    const seen = new Set<string>();
    const keys = inputs.map((input, i): KeyRecord => inEntry(i, () => {
      const name = validName(input.name);
      const instanceId = optionalUuid(input.instanceId, "instance_id");
      const scopes = validScopes(input.scopes);
      const environment: Environment = validEnvironment(input.environment);
      const metadata = validMetadata(input.metadata);
      if ((input.sha256 === "") === (input.plaintext === "")) throw invalid("give exactly one of sha256 and plaintext");
      if (input.sha256 !== "" && !SHA256_HEX.test(input.sha256)) throw invalid(`sha256 must be 64 lowercase hex characters`);
      if (input.plaintext !== "" && !/^[\x21-\x7e]{8,256}$/.test(input.plaintext)) {
        throw invalid(`plaintext must be 8-256 printable ASCII characters without spaces`);
      }
      if (input.prefix !== "" && !PREFIX.test(input.prefix)) throw invalid(`prefix must be 1-32 characters of A-Z a-z 0-9 _ -`);
      if (input.expiresAt !== null) validFutureTime(input.expiresAt, now, "expires_at");
      const digest = input.sha256 || digestKey(input.plaintext);
      if (seen.has(digest)) throw invalid("the same key appears twice in this request");
      seen.add(digest);
      const ours = input.plaintext !== "" ? parseKey(input.plaintext) : null;
      const registered = this.importPrefixes.find((p) => input.plaintext.startsWith(p));
      if (input.plaintext !== "" && !ours && !isLegacyImport(input.plaintext, this.importPrefixes)) {
        throw invalid(`plaintext has no zpk checksum and no registered prefix: it could never authenticate (register its prefix in IMPORT_PREFIXES)`);
      }
      return newKeyRecord(
        {
          id: newKeyId(now),
          customerId,
          instanceId,
          name,
          // Never a piece of a legacy secret beyond its registered (public) prefix.
          prefix: input.prefix || ours?.prefix || registered || "imported",
          environment,
          scopes,
          metadata,
          digest,
          expiresAt: input.expiresAt,
          // Only our checksum carries no secret entropy; a legacy key's tail may, so it is not shown.
          lastFour: ours ? input.plaintext.slice(-4) : "",
        },
        now,
      );
    }));
    const events = keys.map((k) =>
      this.audit.build({ customerId, action: "api_key.imported", actor: actorOf(caller), target: targetOf(k), instanceId: k.instanceId, outcome: "success", reason: null, ...origin }),
    );
    await this.requireRoom(customerId, keys.length, this.now());
    await this.store.insertKeys(keys, events);
    for (const k of keys) this.onChanged(k);
    return keys;
  }
}
