import type * as grpc from "@grpc/grpc-js";

/**
 * A grpc-js call's metadata read as the Headers of its HandlerContext, without copying: a call
 * reads two or three of its headers (authorization, x-request-id, user-agent), so building a map
 * of all of them per call was work for nothing. Binary (`-bin`) values are not headers and are
 * left out, as the Connect adapters leave them out of text headers; writes go to the metadata.
 */
export class MetadataHeaders implements Headers {
  constructor(private readonly md: grpc.Metadata) {}

  get(name: string): string | null {
    const values = this.md.get(name.toLowerCase());
    let out: string | null = null;
    for (const v of values) if (typeof v === "string") out = out === null ? v : `${out}, ${v}`;
    return out;
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  append(name: string, value: string): void {
    this.md.add(name.toLowerCase(), value);
  }

  set(name: string, value: string): void {
    this.md.set(name.toLowerCase(), value);
  }

  delete(name: string): void {
    this.md.remove(name.toLowerCase());
  }

  getSetCookie(): string[] {
    const v = this.get("set-cookie");
    return v === null ? [] : [v];
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  *entries(): HeadersIterator<[string, string]> {
    for (const k of Object.keys(this.md.getMap())) {
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
