import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AuthenticateResponseSchema, DenialReason, RateLimitStatusSchema } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { ENCODED_FIELDS, encodeAuthenticateResponse } from "../../src/transport/grpc/authenticate-response-encoder.js";

type Init = MessageInitShape<typeof AuthenticateResponseSchema>;
const reference = (m: Init) => toBinary(AuthenticateResponseSchema, create(AuthenticateResponseSchema, m));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

const uint32 = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff }));
const text = fc.oneof(fc.constant(""), fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }));
const principal = fc.record({
  keyId: text,
  customerId: text,
  instanceId: text,
  scopes: fc.array(text, { maxLength: 4 }),
  environment: text,
  prefix: text,
  metadata: fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), text, { maxKeys: 4 }),
});
const response: fc.Arbitrary<Init> = fc.record(
  {
    valid: fc.boolean(),
    denialReason: fc.constantFrom(...(Object.values(DenialReason).filter((v) => typeof v === "number") as DenialReason[])),
    principal,
    rateLimit: fc.record({ limit: uint32, remaining: uint32, retryAfterSeconds: uint32 }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);

describe("authenticate-response-encoder", () => {
  it("writes the bytes protobuf-es's toBinary writes, for any AuthenticateResponse the service can return", () => {
    fc.assert(fc.property(response, (m) => {
        expect(hex(encodeAuthenticateResponse(m))).toBe(hex(reference(m)));
      }), { numRuns: 2000 });
  });

  it("a valid answer without a charge is encoded once per principal object, and a new principal gets its own bytes", () => {
    const p = { keyId: "key_1", customerId: "c", scopes: ["read"], environment: "live", prefix: "zpk_live_abcdefgh", metadata: { plan: "pro" } };
    const first = encodeAuthenticateResponse({ valid: true, principal: p });
    expect(encodeAuthenticateResponse({ valid: true, principal: p })).toBe(first);
    const renamed = { ...p, scopes: ["write"] };
    expect(hex(encodeAuthenticateResponse({ valid: true, principal: renamed }))).toBe(hex(reference({ valid: true, principal: renamed })));
    // With a charge, the rate-limit state is written per call.
    const charged = encodeAuthenticateResponse({ valid: true, principal: p, rateLimit: { limit: 60, remaining: 59 } });
    expect(hex(charged)).toBe(hex(reference({ valid: true, principal: p, rateLimit: { limit: 60, remaining: 59 } })));
  });

  it("knows every field of AuthenticateResponse and RateLimitStatus (a new field must be taught to it)", () => {
    expect(AuthenticateResponseSchema.fields.map((f) => f.number)).toEqual([...ENCODED_FIELDS.response]);
    expect(RateLimitStatusSchema.fields.map((f) => f.number)).toEqual([...ENCODED_FIELDS.rateLimit]);
  });
});
