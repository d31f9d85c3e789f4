import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DomainError } from "../domain/errors.js";
import { ERROR_CODE_HEADER, ERROR_TABLE } from "./error-codes.js";

/**
 * The service layer's one exit for failures: a DomainError becomes a ConnectError with its gRPC
 * code, our error code and its extra headers as metadata (so REST can render the documented
 * body, and connect sends them as headers/trailers). Anything unexpected is logged and becomes
 * a bare `internal` error: no stack trace or driver message reaches a client.
 */
export function toConnectError(err: unknown, ctx: HandlerContext, log: Logger): ConnectError {
  if (err instanceof DomainError) {
    const metadata = new Headers(err.headers);
    metadata.set(ERROR_CODE_HEADER, err.code);
    const requestId = ctx.responseHeader.get("x-request-id");
    if (requestId) metadata.set("x-request-id", requestId);
    if (err.code === "unavailable" || err.code === "internal") {
      log.error({ err: (err as { cause?: unknown }).cause ?? err, requestId }, "storage failure");
    }
    return new ConnectError(err.message, ERROR_TABLE[err.code].grpc, metadata);
  }
  if (err instanceof ConnectError) return err;
  log.error({ err, requestId: ctx.responseHeader.get("x-request-id") }, "unexpected error");
  return new ConnectError("internal error", Code.Internal, { [ERROR_CODE_HEADER]: "internal" });
}
