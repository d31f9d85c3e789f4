import type { IncomingHttpHeaders } from "node:http";
import { HeadersView } from "../headers-view.js";

/**
 * A node request's headers (HTTP/1.1 or HTTP/2) read as the Headers of its HandlerContext, without
 * copying, as MetadataHeaders does for grpc-js: a REST call reads two or three of them
 * (authorization, x-request-id, user-agent), so a map of all of them per request was work for
 * nothing. Node has already lowercased the names and joined repeated values (all but
 * `set-cookie`, whose values are joined here with ", " too); HTTP/2's pseudo-headers (`:path`…)
 * are not headers and are left out. Writes go to node's object.
 */
export class NodeRequestHeaders extends HeadersView {
  constructor(private readonly headers: IncomingHttpHeaders) {
    super();
  }

  get(name: string): string | null {
    const k = name.toLowerCase();
    if (k.startsWith(":")) return null;
    const v = this.headers[k];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
  }

  set(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }

  delete(name: string): void {
    delete this.headers[name.toLowerCase()];
  }

  getSetCookie(): string[] {
    return this.headers["set-cookie"] ?? [];
  }

  protected names(): string[] {
    return Object.keys(this.headers);
  }
}
