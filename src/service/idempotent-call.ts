import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../domain/types.js";

/**
 * The transport side of idempotency (domain/idempotency.ts): the `Idempotency-Key` HTTP header,
 * which is the same `idempotency-key` metadata entry on gRPC and Connect.
 */
export const idempotencyKeyOf = (ctx: HandlerContext): string | null => ctx.requestHeader.get("idempotency-key");

/** Records are shared by a customer's keys, never across customers; each internal caller has its own. */
export const idempotencyScope = (caller: Caller): string =>
  caller.kind === "key" ? `customer:${caller.key.customerId}` : `internal:${caller.name}`;

/**
 * The RPC and its request in one canonical form (object keys sorted, so map order does not
 * matter): "the same parameters". Built from the message object itself, not protobuf JSON, which
 * refuses some values a request may carry (a timestamp before year 1): validation comes later.
 */
export function canonicalParams<S extends DescMessage>(rpc: string, _schema: S, req: MessageShape<S>): string {
  return `${rpc}\0${stable(req)}`;
}

function stable(v: unknown): string {
  if (typeof v === "bigint") return `"${v}n"`;
  if (v instanceof Uint8Array) return `"b64:${Buffer.from(v).toString("base64")}"`;
  if (v === undefined) return "null";
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stable(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
