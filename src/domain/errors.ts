/**
 * Every error a client can see, in one place (SPEC §3): the closed set of codes, the one table
 * from a code to its gRPC status and HTTP status, and the error class that carries a code.
 *
 * Who raises what:
 * - the domain and the service raise the codes of `DomainErrorCode`, through the helpers below;
 * - a transport raises the codes of `TransportErrorCode` itself, for what it refuses before a
 *   request reaches the service (a key in the URL, a method a route does not have, a body over
 *   the limit); the domain never constructs one.
 *
 * How it travels: the service turns an `ApiError` into a ConnectError with the table's gRPC
 * status and the ApiError as its `cause` (to-connect-error.ts); the REST renderer reads the code
 * back from that `cause`, so no error code travels in a header to any client. Expected denials of
 * `Authenticate` are values, not errors (authenticator.ts).
 */

/** Codes the domain and the service raise. */
export type DomainErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "key_expired"
  | "key_revoked"
  | "key_disabled"
  | "failed_precondition"
  | "idempotency_conflict"
  | "already_exists"
  | "permission_denied"
  | "not_found"
  | "rate_limited"
  | "internal"
  | "unavailable";

/** Codes only a transport raises, before a request reaches the service. */
export type TransportErrorCode = "key_in_url" | "method_not_allowed" | "payload_too_large";

export type ErrorCode = DomainErrorCode | TransportErrorCode;

/** The gRPC status codes of the gRPC spec (`grpc/status.h`; connect's `Code` has the same numbers). */
export const GRPC_STATUS = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The one table: our code -> the gRPC status RPC clients get and the HTTP status REST clients get. */
export const ERROR_TABLE: Record<ErrorCode, { grpc: number; http: number }> = {
  invalid_argument: { grpc: GRPC_STATUS.INVALID_ARGUMENT, http: 400 },
  key_in_url: { grpc: GRPC_STATUS.INVALID_ARGUMENT, http: 400 },
  unauthenticated: { grpc: GRPC_STATUS.UNAUTHENTICATED, http: 401 },
  key_expired: { grpc: GRPC_STATUS.UNAUTHENTICATED, http: 401 },
  key_revoked: { grpc: GRPC_STATUS.UNAUTHENTICATED, http: 401 },
  key_disabled: { grpc: GRPC_STATUS.UNAUTHENTICATED, http: 401 },
  // Issue 13; as Connect maps them: FAILED_PRECONDITION -> 400, ABORTED and ALREADY_EXISTS -> 409.
  failed_precondition: { grpc: GRPC_STATUS.FAILED_PRECONDITION, http: 400 },
  idempotency_conflict: { grpc: GRPC_STATUS.ABORTED, http: 409 },
  already_exists: { grpc: GRPC_STATUS.ALREADY_EXISTS, http: 409 },
  permission_denied: { grpc: GRPC_STATUS.PERMISSION_DENIED, http: 403 },
  not_found: { grpc: GRPC_STATUS.NOT_FOUND, http: 404 },
  method_not_allowed: { grpc: GRPC_STATUS.UNIMPLEMENTED, http: 405 },
  payload_too_large: { grpc: GRPC_STATUS.RESOURCE_EXHAUSTED, http: 413 },
  rate_limited: { grpc: GRPC_STATUS.RESOURCE_EXHAUSTED, http: 429 },
  internal: { grpc: GRPC_STATUS.INTERNAL, http: 500 },
  unavailable: { grpc: GRPC_STATUS.UNAVAILABLE, http: 503 },
};

/** Our code for a gRPC status that did not come from an ApiError (raised by the RPC library itself). */
const BY_GRPC: Partial<Record<number, ErrorCode>> = {
  [GRPC_STATUS.INVALID_ARGUMENT]: "invalid_argument",
  [GRPC_STATUS.UNAUTHENTICATED]: "unauthenticated",
  [GRPC_STATUS.PERMISSION_DENIED]: "permission_denied",
  [GRPC_STATUS.NOT_FOUND]: "not_found",
  [GRPC_STATUS.FAILED_PRECONDITION]: "failed_precondition",
  [GRPC_STATUS.ABORTED]: "idempotency_conflict",
  [GRPC_STATUS.ALREADY_EXISTS]: "already_exists",
  [GRPC_STATUS.RESOURCE_EXHAUSTED]: "rate_limited",
  [GRPC_STATUS.UNAVAILABLE]: "unavailable",
  [GRPC_STATUS.DEADLINE_EXCEEDED]: "unavailable",
};

export const errorCodeForGrpc = (status: number): ErrorCode => BY_GRPC[status] ?? "internal";

/** A refusal with a code of the closed set, a message for the client, and extra response headers. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra response headers the error carries (e.g. `retry-after`, `connection: close`). */
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    const limit = Error.stackTraceLimit;
    if (!isFault(code)) Error.stackTraceLimit = 0;
    super(message, options);
    Error.stackTraceLimit = limit;
    this.name = "ApiError";
  }
}

/**
 * Whether a code reports our fault (the store failed, or a bug), not the client's: such an error
 * is logged, and keeps its stack trace for that log. Every other ApiError is an answer to the
 * client (a 401, a 404, a 429) whose stack nobody reads. Capturing
 * the stacks of one and of the ConnectError it becomes cost 12 µs of the 16 µs that turning a
 * denial into its error took (measured in a loop of toConnectError(unauthenticated(…))), more than
 * a whole valid Authenticate of our code: a denied or rate-limited client must not cost more than
 * a served one.
 */
export const isFault = (code: ErrorCode) => code === "internal" || code === "unavailable";

/**
 * `make()` with no stack trace captured, for the error objects that only carry an answer to the
 * client (the ConnectError an ApiError becomes): see isFault.
 */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

const domain = (code: DomainErrorCode, message: string, headers?: Record<string, string>) => new ApiError(code, message, headers);

export const invalid = (message: string) => domain("invalid_argument", message);
export const notFound = (what = "api key") => domain("not_found", `${what} not found`);
export const forbidden = (message: string) => domain("permission_denied", message);
export const unauthenticated = (message: string) => domain("unauthenticated", message);
export const keyExpired = () => domain("key_expired", "this API key has expired");
export const keyRevoked = () => domain("key_revoked", "this API key has been revoked");
export const keyDisabled = () => domain("key_disabled", "this API key is disabled");
/** The request is valid but the key's state refuses it (rolling a revoked key, …). */
export const failedPrecondition = (message: string) => domain("failed_precondition", message);
/** An Idempotency-Key reused with other parameters, or while its first call still runs (issue 13). */
export const idempotencyConflict = (message: string, headers?: Record<string, string>) => domain("idempotency_conflict", message, headers);
export const alreadyExists = (message: string) => domain("already_exists", message);
export const rateLimited = (headers: Record<string, string>) =>
  domain("rate_limited", "rate limit exceeded: retry after the Retry-After delay", headers);

/** A storage fault: the store is unreachable or refused a write; nothing was half-written. */
export class StorageUnavailableError extends ApiError {
  constructor(message = "storage is unavailable, try again shortly", cause?: unknown) {
    super("unavailable", message, {}, { cause });
    this.name = "StorageUnavailableError";
  }
}
