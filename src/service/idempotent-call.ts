import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
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

/** The RPC and its request as canonical JSON (sorted object keys): "the same parameters". */
export function canonicalParams<S extends DescMessage>(rpc: string, schema: S, req: MessageShape<S>): string {
  return `${rpc}\0${stable(toJson(schema, req))}`;
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stable(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
