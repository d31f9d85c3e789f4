import type * as grpc from "@grpc/grpc-js";
import { HeadersView } from "../headers-view.js";

/**
 * A grpc-js call's metadata read as the Headers of its HandlerContext, without copying: a call
 * reads two or three of its headers (authorization, x-request-id, user-agent), so building a map
 * of all of them per call was work for nothing. Binary (`-bin`) values are not headers and are
 * left out, as the Connect adapters leave them out of text headers; writes go to the metadata.
 */
export class MetadataHeaders extends HeadersView {
  constructor(private readonly md: grpc.Metadata) {
    super();
  }

  get(name: string): string | null {
    const values = this.md.get(name.toLowerCase());
    let out: string | null = null;
    for (const v of values) if (typeof v === "string") out = out === null ? v : `${out}, ${v}`;
    return out;
  }

  /** Each value its own metadata entry, as grpc-js sends repeats (not joined as the view's default). */
  override append(name: string, value: string): void {
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

  protected names(): string[] {
    return Object.keys(this.md.getMap());
  }
}
