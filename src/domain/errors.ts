/**
 * The closed set of error codes this service answers with (SPEC §3). Domain code throws
 * `DomainError` for a request it must refuse; the service layer turns it into a `ConnectError`
 * and the REST layer into `{"error":{"code","message"}}`. Expected denials of `Authenticate`
 * are values, not errors (see authenticator.ts).
 */
export type ErrorCode =
  | "invalid_argument"
  | "key_in_url"
  | "unauthenticated"
  | "key_expired"
  | "key_revoked"
  | "key_disabled"
  | "failed_precondition"
  | "idempotency_conflict"
  | "already_exists"
  | "permission_denied"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "rate_limited"
  | "internal"
  | "unavailable";

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra response headers the error carries (e.g. `retry-after`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export const invalid = (message: string) => new DomainError("invalid_argument", message);
export const notFound = (what = "api key") => new DomainError("not_found", `${what} not found`);
export const forbidden = (message: string) => new DomainError("permission_denied", message);
/** The request is valid but the key's state refuses it (rolling a revoked key, …). */
export const failedPrecondition = (message: string) => new DomainError("failed_precondition", message);

/** A storage fault: the store is unreachable or refused a write; nothing was half-written. */
export class StorageUnavailableError extends DomainError {
  constructor(message = "storage is unavailable, try again shortly", override readonly cause?: unknown) {
    super("unavailable", message);
    this.name = "StorageUnavailableError";
  }
}
