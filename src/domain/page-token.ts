import { invalid } from "./errors.js";

/**
 * Opaque page tokens: base64url of the last id of the previous page. Ids are ULIDs, so "id below
 * the token" continues a newest-first listing with no duplicates and no gaps, even while new rows
 * arrive.
 */
export const encodePageToken = (lastId: string) => Buffer.from(lastId, "utf8").toString("base64url");

export function decodePageToken(token: string, idPattern: RegExp): string | null {
  if (token === "") return null;
  const id = /^[A-Za-z0-9_-]{1,64}$/.test(token) ? Buffer.from(token, "base64url").toString("utf8") : "";
  if (!idPattern.test(id)) throw invalid("page_token is not a token this service issued");
  return id;
}

/**
 * A page of `limit` rows from a read of `limit + 1` (the caller reads one row more than asked, to
 * learn whether another page exists): the read's own array when no row is over (no copy), and the
 * token of the page after when one is. Synchronous, so a list's read is awaited once, by its caller.
 */
export function pageOf<T extends { id: string }>(limit: number, rows: T[]): { items: T[]; nextPageToken: string | null } {
  const items = rows.length > limit ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  return { items, nextPageToken: rows.length > limit && last ? encodePageToken(last.id) : null };
}
