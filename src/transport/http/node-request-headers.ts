import type { IncomingHttpHeaders } from "node:http";

/**
 * A node request's headers (HTTP/1.1 or HTTP/2) read as the Headers of its HandlerContext, without
 * copying, as MetadataHeaders does for grpc-js: a REST call reads two or three of them
 * (authorization, x-request-id, user-agent), so a map of all of them per request was work for
 * nothing. Node has already lowercased the names and joined repeated values (all but
 * `set-cookie`, whose values are joined here with ", " too); HTTP/2's pseudo-headers (`:path`…)
 * are not headers and are left out. Writes go to node's object.
 */
export class NodeRequestHeaders implements Headers {
  constructor(private readonly headers: IncomingHttpHeaders) {}

  get(name: string): string | null {
    const k = name.toLowerCase();
    if (k.startsWith(":")) return null;
    const v = this.headers[k];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  append(name: string, value: string): void {
    const prev = this.get(name);
    this.set(name, prev === null ? value : `${prev}, ${value}`);
  }

  set(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }

  delete(name: string): void {
    delete this.headers[name.toLowerCase()];
  }

  getSetCookie(): string[] {
    const v = this.headers["set-cookie"];
    return v === undefined ? [] : v;
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  *entries(): HeadersIterator<[string, string]> {
    for (const k of Object.keys(this.headers)) {
      const v = this.get(k);
      if (v !== null) yield [k, v];
    }
  }

  *keys(): HeadersIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): HeadersIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator]() {
    return this.entries();
  }
}
