import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type AuthenticateResponseSchema, PrincipalSchema } from "../../../gen/apikeys/v1/api_key_service_pb.js";
import { ProtobufWriter } from "../protobuf-writer.js";

type AuthenticateResponseInit = MessageInitShape<typeof AuthenticateResponseSchema>;
type PrincipalInit = NonNullable<AuthenticateResponseInit["principal"]>;

/**
 * AuthenticateResponse's wire bytes on GRPC_PORT, the gateway's per-request call. The service
 * hands out one principal object per cached key version (api-key-service.ts), so its bytes are
 * encoded once, on that version's first use, and a valid answer without a rate-limit charge is
 * the same bytes every time: a call copies them instead of walking the descriptor (protobuf-es's
 * toBinary of a principal took ~3 µs, most of a call's own work). A new key version is a new
 * object, so nothing stale is ever sent; entries go when their principal is collected.
 *
 * Fields are written in field-number order (valid = 1, denial_reason = 2, principal = 3,
 * rate_limit = 4: RateLimitStatus { limit = 1, remaining = 2, retry_after_seconds = 3 }), as
 * toBinary writes them; test/unit/authenticate-response-encoder compares the two byte for byte,
 * and fails when the message gains a field this writer does not know.
 */
export function encodeAuthenticateResponse(m: AuthenticateResponseInit): Uint8Array {
  const principal = m.principal;
  const plainValid = m.valid === true && principal !== undefined && m.rateLimit === undefined && !m.denialReason;
  if (plainValid) {
    const cached = validAnswers.get(principal);
    if (cached) return cached;
  }
  const w = new ProtobufWriter();
  w.uint(1, m.valid ? 1 : 0);
  w.uint(2, m.denialReason ?? 0);
  if (principal !== undefined) w.bytes(3, principalBytes(principal));
  const rl = m.rateLimit;
  if (rl !== undefined) {
    w.message(4, () => {
      w.uint(1, rl.limit ?? 0);
      w.uint(2, rl.remaining ?? 0);
      w.uint(3, rl.retryAfterSeconds ?? 0);
    });
  }
  if (!plainValid) return w.done();
  const bytes = Uint8Array.from(w.done());
  validAnswers.set(principal, bytes);
  return bytes;
}

/** The field numbers this writer knows; its test compares them with the schema's. */
export const ENCODED_FIELDS = { response: [1, 2, 3, 4], rateLimit: [1, 2, 3] } as const;

const principals = new WeakMap<PrincipalInit, Uint8Array>();
const validAnswers = new WeakMap<PrincipalInit, Uint8Array>();

function principalBytes(p: PrincipalInit): Uint8Array {
  let bytes = principals.get(p);
  if (!bytes) {
    bytes = toBinary(PrincipalSchema, create(PrincipalSchema, p));
    principals.set(p, bytes);
  }
  return bytes;
}
