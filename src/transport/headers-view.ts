/**
 * What a Headers read in place over a transport's own header store (grpc-js metadata, node's
 * request headers) needs beyond reading one name: `get` and the names present are the store's;
 * iteration, `has` and `append` follow from them, the same for every transport.
 */
export abstract class HeadersView implements Headers {
  /** The value of `name` (any spelling), its repeats joined with ", ", or null. */
  abstract get(name: string): string | null;
  abstract set(name: string, value: string): void;
  abstract delete(name: string): void;
  abstract getSetCookie(): string[];
  /** The names present in the store, lowercase (some may have no text value: `get` says null). */
  protected abstract names(): string[];

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  append(name: string, value: string): void {
    const prev = this.get(name);
    this.set(name, prev === null ? value : `${prev}, ${value}`);
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  *entries(): HeadersIterator<[string, string]> {
    for (const k of this.names()) {
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
