import { hintOf, isActive, type KeyRecord } from "../../domain/types.js";
import type { KeyListPage } from "../../domain/key-manager.js";

/**
 * `GET /v1/api-keys`'s body built straight from the domain's records: the very JSON that
 * `present(ListKeysResponseSchema, <ListKeys response>)` renders (SPEC §3's shape: snake_case,
 * proto field order, unset optionals `null`, timestamps ISO 8601 with ms, 64-bit counts as numbers),
 * without a protobuf message per key and a descriptor walk per field, which were most of a list
 * call's cost (issue 17). test/unit/key-page-json.test.ts holds both renderings equal for records
 * with every optional field set and unset; a field added to `Key` fails it until added here.
 *
 * The body is UTF-8 bytes put together from bytes, not a string: every key's `hint` holds "…", so
 * a page as a string is a two-byte string, which node measures (Content-Length) and encodes
 * (the write) at about 3 ns a character, 20 µs for a 10-key page of 4.9 KB. The stored records'
 * Key objects are kept as one run of bytes (`runOf`), and a page is that run copied into one buffer
 * from `pageBuffer`, with the few strings that change per call (an overlaid key's usage, the
 * page's tail) written straight into it: about five copies a page, where a copy per key and a
 * lookup per key were most of this function's cost under load.
 */
export function keyPageJson(page: KeyListPage): Buffer {
  const { items, stored, now } = page;
  const n = items.length;
  const tail = `],"next_page_token":${str(page.nextPageToken)},"total_size":${page.totalSize}}`;
  if (n === 0) return Buffer.from(`{"data":[${tail}`);
  const run = runOf(stored, now);
  let overlaid: string[] | null = null; // an overlaid key's usage JSON, at its index
  let length = PAGE_START.length + run.json.length + Buffer.byteLength(tail);
  for (let i = 0; i < n; i++) {
    const k = items[i]!;
    if (k === stored[i]) continue; // k itself, or its copy with pending usage
    const u = usageJson(k); // ASCII: its length is its byte count
    (overlaid ??= new Array<string>(n))[i] = u;
    length += u.length - (run.usage[2 * i + 1]! - run.usage[2 * i]!);
  }
  const out = pageBuffer(length);
  out.set(PAGE_START, 0);
  let at = PAGE_START.length;
  let from = 0; // the run's bytes copied so far
  if (overlaid !== null) {
    for (let i = 0; i < n; i++) {
      const u = overlaid[i];
      if (u === undefined) continue;
      at = copy(out, at, run.json, from, run.usage[2 * i]!);
      at += out.write(u, at, "latin1");
      from = run.usage[2 * i + 1]!;
    }
  }
  at = copy(out, at, run.json, from, run.json.length);
  out.write(tail, at, "utf8");
  return out;
}

/** Copies `src[from, to)` into `out` at `at`; answers where the copy ends. */
const copy = (out: Buffer, at: number, src: Uint8Array, from: number, to: number) => {
  out.set(src.subarray(from, to), at);
  return at + to - from;
};

const utf8 = new TextEncoder();
const PAGE_START = utf8.encode('{"data":[');

/** Bytes of one slab, and the largest page cut from one (a larger page gets a buffer of its own). */
const PAGE_SLAB_BYTES = 32 * 1024;
const MAX_SLAB_PAGE = 8 * 1024;
let slab = Buffer.allocUnsafeSlow(PAGE_SLAB_BYTES);
let slabUsed = 0;

/**
 * `length` bytes for a page, cut from a shared slab the way node's Buffer pool does (its pool takes
 * only what is under 4 KB, and a 10-key page is 4.9 KB). A slab lives until the last page cut from
 * it is written: node lets go of a page once the kernel took it, so a slab outlives its pages only
 * while a client that stopped reading has one of them queued, at most PAGE_SLAB_BYTES for such a
 * connection instead of the page's own bytes.
 */
function pageBuffer(length: number): Buffer {
  if (length > MAX_SLAB_PAGE) return Buffer.allocUnsafeSlow(length);
  if (slabUsed + length > PAGE_SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(PAGE_SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + length);
  slabUsed = (slabUsed + length + 7) & ~7;
  return out;
}

/**
 * The Key objects of a page's stored records, in order and comma-separated, each in the proto's
 * field order and for one value of `is_active` (the one field that depends on the time). Frozen
 * records (what SqliteStore's list cache hands out again while the file is unchanged) cannot
 * change, so a run of them is kept, under its first record, for as long as that record lives,
 * and made again when the page's records differ or a key's `is_active` turns (at its expiry). An
 * overlaid copy (KeyListPage) differs from its stored record only in `last_used_at` and
 * `total_requests`, whose bytes `usage` locates; a run of other records (MongoDB's reads) is made
 * for its page only. The run's array owns its memory (a Buffer from node's pool would keep its
 * whole 8 KB slab alive).
 */
interface Run {
  records: readonly KeyRecord[];
  active: boolean[];
  json: Uint8Array;
  /** Per record, where its usage bytes start and end in `json` (after `"last_used_at":`, before `,"expires_at"`). */
  usage: number[];
}

function runOf(stored: readonly KeyRecord[], now: number): Run {
  const run = runs.get(stored[0]!);
  if (run !== undefined && sameRun(run, stored, now)) return run;
  const made = makeRun(stored, now);
  // Object.isFrozen walks a record's 20 properties (27 ns): asked only when a run is made.
  if (stored.every((k) => Object.isFrozen(k))) runs.set(stored[0]!, made);
  return made;
}

function sameRun(run: Run, stored: readonly KeyRecord[], now: number): boolean {
  if (run.records.length !== stored.length) return false;
  for (let i = 0; i < stored.length; i++) {
    const k = stored[i]!;
    if (run.records[i] !== k || run.active[i] !== isActive(k, now)) return false;
  }
  return true;
}

function makeRun(stored: readonly KeyRecord[], now: number): Run {
  const parts: Uint8Array[] = [];
  const active: boolean[] = [];
  const usage: number[] = [];
  let at = 0;
  for (const k of stored) {
    if (parts.length > 0) at += 1; // the comma
    const a = isActive(k, now);
    const head =
      `{"id":${str(k.id)},"customer_id":${str(k.customerId)},"instance_id":${str(k.instanceId)},"name":${str(k.name)}` +
      `,"prefix":${str(k.prefix)},"environment":${str(k.environment)},"scopes":${JSON.stringify(k.scopes)}` +
      `,"metadata":${JSON.stringify(k.metadata)},"last_used_at":`;
    const u = usageJson(k); // ASCII: its length is its byte count
    const rest =
      `,"expires_at":${time(k.expiresAt)},"created_at":${time(k.createdAt)},"updated_at":${time(k.updatedAt)},"revoked_at":${time(k.revokedAt)}` +
      `,"is_active":${a},"enabled":${k.enabled},"rolled_from":${str(k.rolledFrom)},"rolled_to":${str(k.rolledTo)},"hint":${str(hintOf(k))}}`;
    const whole = utf8.encode(head + u + rest);
    const usageAt = at + Buffer.byteLength(head);
    usage.push(usageAt, usageAt + u.length);
    active.push(a);
    parts.push(whole);
    at += whole.length;
  }
  const json = new Uint8Array(at);
  let to = 0;
  for (const part of parts) {
    if (to > 0) json[to++] = COMMA;
    json.set(part, to);
    to += part.length;
  }
  return { records: stored.slice(), active, json, usage };
}

const COMMA = 0x2c;

/** `last_used_at`'s value and the `total_requests` field. */
const usageJson = (k: KeyRecord) => `${time(k.lastUsedAt)},"total_requests":${JSON.stringify(k.totalRequests)}`;

const runs = new WeakMap<KeyRecord, Run>();

const str = (s: string | null) => (s === null ? "null" : JSON.stringify(s));
/** ISO 8601 has no character JSON escapes. */
const time = (ms: number | null) => (ms === null ? "null" : `"${iso(ms)}"`);

/**
 * `new Date(ms).toISOString()`, which was most of this function's time (30 dates a 10-key page):
 * the date part from a small cache per day, the time of day from tables. Outside years 1970-9999
 * (or for a fractional ms) it is toISOString itself.
 */
function iso(ms: number): string {
  if (!(ms >= 0 && ms < YEAR_10000) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  let date = dates.get(day);
  if (date === undefined) {
    date = new Date(day * DAY_MS).toISOString().slice(0, 11); // "YYYY-MM-DDT"
    if (dates.size >= 4096) dates.clear();
    dates.set(day, date);
  }
  let t = ms - day * DAY_MS;
  const milli = t % 1000;
  t = (t - milli) / 1000;
  const sec = t % 60;
  t = (t - sec) / 60;
  const min = t % 60;
  return `${date}${TWO[(t - min) / 60]}:${TWO[min]}:${TWO[sec]}.${THREE[milli]}Z`;
}

const DAY_MS = 86_400_000;
const YEAR_10000 = 253_402_300_800_000;
const dates = new Map<number, string>();
const TWO = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, "0"));
const THREE = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));
