import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ApiError, ERROR_TABLE, isFault, withoutStack } from "../domain/errors.js";
import { REQUEST_ID_HEADER, requestIdOf } from "./call-context.js";

/**
 * The service layer's one exit for failures: an ApiError becomes a ConnectError with the gRPC
 * status of the one error table (domain/errors.ts), its extra headers and the request id as
 * metadata (connect sends them as headers/trailers), and the ApiError itself as `cause`, which is
 * where the REST renderer reads our code from: no error code travels in a header. Anything
 * unexpected is logged and becomes a bare `internal` error: no stack trace or driver message
 * reaches a client.
 */
export function toConnectError(err: unknown, ctx: HandlerContext, log: Logger): ConnectError {
  const requestId = requestIdOf(ctx);
  if (err instanceof ApiError) {
    const metadata = new Headers(err.headers);
    metadata.set(REQUEST_ID_HEADER, requestId);
    if (isFault(err.code)) {
      log.error({ err: err.cause ?? err, requestId }, "storage failure");
    }
    // Its stack would only repeat the ApiError's (its cause), which the log above already has.
    return withoutStack(() => new ConnectError(err.message, ERROR_TABLE[err.code].grpc as Code, metadata, undefined, err));
  }
  if (err instanceof ConnectError) return err;
  log.error({ err, requestId }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}
