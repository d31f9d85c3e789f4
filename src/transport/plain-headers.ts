/**
 * The Headers of the contexts our own adapters (grpc-js, REST) build. Their input was already
 * parsed and checked by Node's HTTP/1.1 parser or HTTP/2 (nghttp2), and their output is set by
 * the service, so undici's `Headers`, which validates and normalises every name and value on each
 * call, was measurable work on the hot path; this is a Map with the same interface.
 */
export class PlainHeaders implements Headers {
  private readonly map = new Map<string, string>();

  append(name: string, value: string): void {
    const k = name.toLowerCase();
    const prev = this.map.get(k);
    this.map.set(k, prev === undefined ? value : `${prev}, ${value}`);
  }

  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }

  getSetCookie(): string[] {
    const v = this.map.get("set-cookie");
    return v === undefined ? [] : [v];
  }

  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }

  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), value);
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.map) callback.call(thisArg, v, k, this);
  }

  entries() {
    return this.map.entries();
  }

  keys() {
    return this.map.keys();
  }

  values() {
    return this.map.values();
  }

  [Symbol.iterator]() {
    return this.map.entries();
  }
}
