import { Code, ConnectError } from "@connectrpc/connect";
import type { ErrorCode } from "../domain/errors.js";

/**
 * The one table from our closed set of error codes to gRPC codes and HTTP statuses. The service
 * layer uses the gRPC column; the REST layer the HTTP column, reading our code back from the
 * `zpk-error-code` metadata the service attaches (or, for errors raised by connect itself, from
 * the gRPC code).
 */
export const ERROR_TABLE: Record<ErrorCode, { grpc: Code; http: number }> = {
  invalid_argument: { grpc: Code.InvalidArgument, http: 400 },
  key_in_url: { grpc: Code.InvalidArgument, http: 400 },
  unauthenticated: { grpc: Code.Unauthenticated, http: 401 },
  key_expired: { grpc: Code.Unauthenticated, http: 401 },
  key_revoked: { grpc: Code.Unauthenticated, http: 401 },
  key_disabled: { grpc: Code.Unauthenticated, http: 401 },
  // Connect maps FAILED_PRECONDITION to 400, ABORTED and ALREADY_EXISTS to 409: the same here.
  failed_precondition: { grpc: Code.FailedPrecondition, http: 400 },
  idempotency_conflict: { grpc: Code.Aborted, http: 409 },
  already_exists: { grpc: Code.AlreadyExists, http: 409 },
  permission_denied: { grpc: Code.PermissionDenied, http: 403 },
  not_found: { grpc: Code.NotFound, http: 404 },
  method_not_allowed: { grpc: Code.Unimplemented, http: 405 },
  payload_too_large: { grpc: Code.ResourceExhausted, http: 413 },
  rate_limited: { grpc: Code.ResourceExhausted, http: 429 },
  internal: { grpc: Code.Internal, http: 500 },
  unavailable: { grpc: Code.Unavailable, http: 503 },
};

/** Metadata key carrying our error code on a ConnectError (a header/trailer on the wire). */
export const ERROR_CODE_HEADER = "zpk-error-code";

const BY_GRPC: Partial<Record<Code, ErrorCode>> = {
  [Code.InvalidArgument]: "invalid_argument",
  [Code.Unauthenticated]: "unauthenticated",
  [Code.PermissionDenied]: "permission_denied",
  [Code.NotFound]: "not_found",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "idempotency_conflict",
  [Code.AlreadyExists]: "already_exists",
  [Code.ResourceExhausted]: "rate_limited",
  [Code.Unavailable]: "unavailable",
  [Code.DeadlineExceeded]: "unavailable",
};

/** Our error code for any ConnectError: the attached one, else the nearest by gRPC code. */
export function errorCodeOf(err: ConnectError): ErrorCode {
  const attached = err.metadata.get(ERROR_CODE_HEADER);
  if (attached && attached in ERROR_TABLE) return attached as ErrorCode;
  return BY_GRPC[err.code] ?? "internal";
}

export const httpStatusOf = (err: ConnectError) => ERROR_TABLE[errorCodeOf(err)].http;
