import { hintOf, isActive, type KeyRecord } from "../../domain/types.js";
import type { KeyRecordPage } from "../../service/api-key-service.js";

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
 * (the write) at about 3 ns a character, 20 µs for a 10-key page of 4.9 KB. The bytes are counted
 * first and then copied into one buffer from `pageBuffer`, with the few strings that change per
 * call (an overlaid key's usage, the page's tail) written straight into it: a `Buffer.concat` and
 * a `TextEncoder.encode` each allocate a new ArrayBuffer, ~0.7 µs apiece on these machines, which
 * were most of this function's cost.
 */
export function keyPageJson(page: KeyRecordPage): Buffer {
  const n = page.items.length;
  const parts: KeyJson[] = new Array(n);
  const usage: (string | undefined)[] = new Array(n);
  const tail = `],"next_page_token":${str(page.nextPageToken)},"total_size":${page.totalSize}}`;
  let length = PAGE_START.length + Math.max(0, n - 1) + Buffer.byteLength(tail);
  for (let i = 0; i < n; i++) {
    const k = page.items[i]!;
    const base = page.stored[i]!; // k itself, or its copy with pending usage
    const p = (parts[i] = keyJson(base, isActive(k, page.now)));
    if (k === base) length += p.whole.length;
    else length += p.head.length + (usage[i] = usageJson(k)).length + p.rest.length; // usage is ASCII: its length is its byte count
  }
  const out = pageBuffer(length);
  let at = put(out, 0, PAGE_START);
  for (let i = 0; i < n; i++) {
    const p = parts[i]!;
    const u = usage[i];
    if (i > 0) out[at++] = COMMA;
    if (u === undefined) at = put(out, at, p.whole);
    else {
      at = put(out, at, p.head);
      at += out.write(u, at, "latin1");
      at = put(out, at, p.rest);
    }
  }
  out.write(tail, at, "utf8");
  return out;
}

const put = (out: Buffer, at: number, bytes: Uint8Array) => (out.set(bytes, at), at + bytes.length);

const utf8 = new TextEncoder();
const COMMA = 0x2c;
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
 * One `Key` object's JSON, fields in the proto's order, for one value of `is_active` (the one field
 * that depends on the time). A frozen record (what SqliteStore's list cache hands out again while
 * the file is unchanged) cannot change, so its JSON is kept for as long as the record lives, and
 * made again only when its `is_active` turns (at its expiry); the page's copy of it with pending
 * usage (KeyListPage) differs only in `last_used_at` and `total_requests`, whose bytes between
 * `head` and `rest` it replaces, and any other record (MongoDB's reads) is rendered each time.
 * TextEncoder's arrays own their memory (a Buffer from node's pool would keep its whole 8 KB slab
 * alive).
 */
interface KeyJson {
  active: boolean;
  whole: Uint8Array;
  /** `whole` up to the usage fields' bytes (through `"last_used_at":`), and from their end (`,"expires_at"…`). */
  head: Uint8Array;
  rest: Uint8Array;
}

function keyJson(k: KeyRecord, active: boolean): KeyJson {
  // Only a frozen record's JSON is kept, so a kept one is right. Object.isFrozen walks the
  // record's 20 properties (27 ns), hence asked only when the JSON is made.
  let json = kept.get(k);
  if (json === undefined || json.active !== active) {
    const head =
      `{"id":${str(k.id)},"customer_id":${str(k.customerId)},"instance_id":${str(k.instanceId)},"name":${str(k.name)}` +
      `,"prefix":${str(k.prefix)},"environment":${str(k.environment)},"scopes":${JSON.stringify(k.scopes)}` +
      `,"metadata":${JSON.stringify(k.metadata)},"last_used_at":`;
    const usage = usageJson(k); // ASCII: its length is its byte count
    const rest =
      `,"expires_at":${time(k.expiresAt)},"created_at":${time(k.createdAt)},"updated_at":${time(k.updatedAt)},"revoked_at":${time(k.revokedAt)}` +
      `,"is_active":${active},"enabled":${k.enabled},"rolled_from":${str(k.rolledFrom)},"rolled_to":${str(k.rolledTo)},"hint":${str(hintOf(k))}}`;
    const usageAt = Buffer.byteLength(head);
    const whole = utf8.encode(head + usage + rest);
    json = { active, whole, head: whole.subarray(0, usageAt), rest: whole.subarray(usageAt + usage.length) };
    if (Object.isFrozen(k)) kept.set(k, json);
  }
  return json;
}

/** `last_used_at`'s value and the `total_requests` field. */
const usageJson = (k: KeyRecord) => `${time(k.lastUsedAt)},"total_requests":${JSON.stringify(k.totalRequests)}`;

const kept = new WeakMap<KeyRecord, KeyJson>();

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
