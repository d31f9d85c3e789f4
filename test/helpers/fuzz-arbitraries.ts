import fc from "fast-check";
import { checksum } from "../../src/domain/key-format.js";

/**
 * fast-check arbitraries for hostile input: strings that break naive code (lone surrogates, NUL,
 * RTL overrides, combining marks, huge values), wrong-typed and deeply nested JSON, raw JSON text
 * JSON.stringify cannot produce (duplicate keys, 1e309, NaN), query strings, paths, headers and
 * keys with valid and invalid checksums.
 *
 * Values that depend on the running server (issued keys, ids) are references (`Ref`) resolved at
 * request time against pools the test fills, so generated values stay plain, printable data.
 */

/** A reference into one of the test's runtime pools; `n` picks an element modulo the pool size. */
export interface Ref {
  ref: string;
  n: number;
}
export const ref = (name: string): fc.Arbitrary<Ref> => fc.nat().map((n) => ({ ref: name, n }));

// ---------------------------------------------------------------- strings

/** Single characters and short strings that tend to break parsers, validators and loggers. */
export const NASTY = [
  "\u0000", "\ud800", "\udc00", "\udbff", "\udfff\ud800", "\ud83d\udd11", "\u202e", "\u200f", "\u200b",
  "\ufeff", "\uffff", "\ufffe", "\u0085", "\u2028", "\u2029", "\u0007", "\u001b[31m", "\r\n", "\n", "\t",
  "e\u0301", "\u0130", "ß", "ﬁ", "𝕏", "Ω", "中文", "اختبار", "\u0000\u0000", "%", "%00", "%zz", "..",
  "/", "\\", "\"", "'", "`", "<script>", "${x}", "{{x}}", "NaN", "null", "true", "-0", "1e309",
  "__proto__", "constructor", "prototype", "zpk_live_", "zpk_test_", "key_", "evt_", " ", "",
];

const nastyPiece = fc.constantFrom(...NASTY);

/** Strings of any code units, lone surrogates included, mostly short. */
export const weirdString: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ unit: "binary", maxLength: 40 }), weight: 4 },
  { arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }), weight: 2 },
  { arbitrary: fc.array(nastyPiece, { minLength: 1, maxLength: 6 }).map((a) => a.join("")), weight: 4 },
  { arbitrary: fc.tuple(fc.string({ maxLength: 10 }), nastyPiece, fc.string({ maxLength: 10 })).map((p) => p.join("")), weight: 2 },
  { arbitrary: fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 8 }), weight: 1 },
);

/** A long string of `length` chars (grapheme count may differ: emoji, combining marks). */
export const hugeString = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc
    .tuple(fc.integer({ min: minLength, max: maxLength }), fc.constantFrom("a", "é", "🔑", "\u0000", "\ud800", "e\u0301", "\u202e", "x "))
    .map(([n, c]) => c.repeat(Math.ceil(n / c.length)).slice(0, n));

/** Mostly weird, sometimes huge. */
export const anyString = (maxHuge = 70_000): fc.Arbitrary<string> =>
  fc.oneof({ arbitrary: weirdString, weight: 20 }, { arbitrary: hugeString(100, maxHuge), weight: 1 });

/** Printable latin-1 (what an HTTP/1.1 header value may carry), sometimes long. */
export const latin1String = (maxLength = 64): fc.Arbitrary<string> =>
  fc.string({
    unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }), fc.constant(0x09)).map((c) => String.fromCharCode(c)),
    maxLength,
  });

/** Printable ASCII (what gRPC metadata may carry). */
export const asciiString = (maxLength = 64): fc.Arbitrary<string> =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength });

// ---------------------------------------------------------------- keys and ids

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const b64urlChars = (n: number) =>
  fc.array(fc.integer({ min: 0, max: 63 }), { minLength: n, maxLength: n }).map((a) => a.map((i) => B64URL[i]).join(""));

/** A key that passes format and checksum checks (SPEC §2) but that the server never issued. */
export const checksumValidKey: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom("live", "test"), b64urlChars(43))
  .map(([env, random]) => {
    const body = `zpk_${env}_${random}`;
    return body + checksum(body);
  });

/** Almost keys: wrong checksum, wrong length, wrong prefix, wrong alphabet, case-mangled. */
export const malformedKey: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom("live", "test"), b64urlChars(43), b64urlChars(6)).map(([e, r, c]) => `zpk_${e}_${r}${c.replace(/[-_]/g, "0")}`),
  checksumValidKey.map((k) => k.slice(0, -1) + (k.endsWith("A") ? "B" : "A")),
  checksumValidKey.map((k) => k.toUpperCase()),
  checksumValidKey.map((k) => k.slice(0, -7)),
  checksumValidKey.map((k) => `${k}x`),
  checksumValidKey.map((k) => ` ${k} `),
  fc.tuple(b64urlChars(43)).map(([r]) => {
    const body = `zpk_prod_${r}`;
    return body + checksum(body);
  }),
  fc.tuple(fc.constantFrom("live", "test"), b64urlChars(42), weirdString).map(([e, r, w]) => {
    const body = `zpk_${e}_${r}${w.slice(0, 1) || "é"}`;
    return body + checksum(body);
  }),
  fc.constantFrom("zpk_live_", "zpk_test_", "zpk_", "zpk", "sk_live_abc", "Bearer", ""),
);

export const keyId: fc.Arbitrary<string> = fc
  .array(fc.integer({ min: 0, max: 31 }), { minLength: 26, maxLength: 26 })
  .map((a) => `key_${a.map((i) => CROCKFORD[i]).join("")}`);

export const uuidLike: fc.Arbitrary<string> = fc.oneof(
  fc.uuid(),
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid().map((u) => u.replace(/-/g, "")),
  fc.uuid().map((u) => `{${u}}`),
  fc.constant("00000000-0000-0000-0000-000000000000"),
);

// ---------------------------------------------------------------- JSON

/** Any JSON value, weird strings included, a few levels deep. */
export const anyJson: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small", maxDepth: 3 },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.constantFrom(0, -0, 1e308, -1e308, 2 ** 53 + 1, 2 ** 31, 2 ** 32, -(2 ** 31) - 1, 0.5, 5e-324),
    weirdString,
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(weirdString, tie("v"), { maxKeys: 4 }),
  ),
})).v;

const timestampString = fc.oneof(
  fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2200-01-01T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(
    "9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "2099-02-30T00:00:00Z", "2099-13-01T00:00:00Z",
    "2099-01-01T00:00:00+14:00", "2099-01-01T00:00:00-12:00", "2099-01-01 00:00:00", "2099-01-01", "+275760-09-13T00:00:00Z",
    "2099-01-01T24:00:00Z", "2099-01-01T00:00:60Z", "1969-12-31T23:59:59Z", "now", "", "2099-01-01T00:00:00.1234567890Z",
  ),
  weirdString,
);

/** Values a client could put in each REST body field: right type, wrong type, out of range. */
const fieldValues: Record<string, fc.Arbitrary<unknown>> = {
  name: fc.oneof({ arbitrary: anyString(70_000), weight: 6 }, { arbitrary: fc.constantFrom("ok", "a", "x".repeat(128), "x".repeat(129)), weight: 2 }, { arbitrary: anyJson, weight: 1 }),
  instance_id: fc.oneof(uuidLike, weirdString, anyJson, ref("instanceId")),
  scopes: fc.oneof(
    fc.array(fc.constantFrom("api_keys:read", "api_keys:write", "audit:read", "*", "api_keys:*", "admin", ""), { maxLength: 5 }),
    fc.array(weirdString, { maxLength: 60 }),
    anyJson,
  ),
  expires_at: fc.oneof(timestampString, anyJson, fc.constant(null)),
  environment: fc.oneof(fc.constantFrom("live", "test", "LIVE", "prod", "", "live\u0000"), weirdString, anyJson),
  metadata: fc.oneof(
    fc.dictionary(weirdString, weirdString, { maxKeys: 25 }),
    fc.dictionary(fc.string({ maxLength: 45 }), anyString(2_000), { maxKeys: 5 }),
    fc.dictionary(fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", ""), weirdString, { maxKeys: 3 }),
    anyJson,
  ),
  customer_id: fc.oneof(ref("customerId"), uuidLike, weirdString, anyJson),
  update_mask: fc.oneof(fc.constantFrom("name", "metadata", "expires_at", "name,metadata", "scopes", "instance_id", "", "*"), anyJson),
  id: fc.oneof(keyId, weirdString),
  secret: weirdString,
  page_size: anyJson,
};

/** A JSON object with some known fields (random values) and maybe unknown ones. */
export const structuredBody: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.record(fieldValues, { requiredKeys: [] }),
    fc.dictionary(fc.oneof(weirdString, fc.constantFrom("Name", "instanceId", "expiresAt", "is_active", "revoked_at", "__proto__")), anyJson, { maxKeys: 2 }),
    fc.boolean(),
  )
  .map(([known, extra, withExtra]) => (withExtra ? { ...known, ...extra } : known));

/** A body a well-behaved client could send: valid fields, so deeper code paths are reached. */
export const plausibleBody: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    name: fc.oneof(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() !== ""), fc.constantFrom("fuzz", "é🔑\u202e", "x".repeat(128))),
    metadata: fc.dictionary(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ maxLength: 50 }), { maxKeys: 5 }),
    scopes: fc.subarray(["api_keys:read", "api_keys:write", "audit:read"]),
    environment: fc.constantFrom("live", "test"),
    expires_at: fc.integer({ min: 60, max: 10 * 365 * 86_400 }).map((s) => new Date(Date.now() + s * 1000).toISOString()),
    instance_id: ref("instanceId"),
    customer_id: ref("customerId"),
  },
  { requiredKeys: ["name"] },
);

const NUMBER_LITERALS = [
  "1e309", "-1e309", "-0", "0.0", "1E400", "123456789012345678901234567890", "-9223372036854775809", "4294967296",
  "1.5", "0x10", "NaN", "Infinity", "-Infinity", "\"NaN\"", "\"Infinity\"", "\"-0\"", "\"1e309\"", "1e-400", "00", "+1", ".5",
];
const FIELDS = Object.keys(fieldValues);
const jsonText = (v: unknown) => JSON.stringify(v) ?? "null";

/** JSON text JSON.stringify never produces: duplicate keys, odd numbers, deep nesting, bad bytes. */
export const rawBodyText: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  // duplicate keys (which one wins?)
  fc.array(fc.tuple(fc.constantFrom("name", "name", "metadata", "scopes", "customer_id", "expires_at"), anyJson), { minLength: 2, maxLength: 5 })
    .map((pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(",")}}`),
  fc.tuple(weirdString, weirdString).map(([a, b]) => `{"name":"x","metadata":{"k":${JSON.stringify(a)},"k":${JSON.stringify(b)}}}`),
  // numbers outside what JSON.stringify writes
  fc.tuple(fc.constantFrom(...FIELDS), fc.constantFrom(...NUMBER_LITERALS)).map(([f, n]) => `{"name":"n",${JSON.stringify(f)}:${n}}`),
  fc.constantFrom(...NUMBER_LITERALS).map((n) => `{"scopes":[${n}],"metadata":{"a":${n}}}`),
  // deep nesting, within and beyond the body limit
  fc.tuple(fc.constantFrom(...FIELDS), fc.integer({ min: 1, max: 40_000 }), fc.constantFrom("[", "{\"a\":")).map(([f, depth, open]) => {
    const close = open === "[" ? "]" : "}";
    return `{${JSON.stringify(f)}:${open.repeat(depth)}${open === "[" ? "" : "1"}${close.repeat(depth)}}`;
  }),
  fc.integer({ min: 1, max: 40_000 }).map((d) => "[".repeat(d) + "]".repeat(d)),
  // escapes of lone surrogates and NUL written by hand
  fc.constantFrom(
    '{"name":"\\ud800"}', '{"name":"\\udfff\\ud800"}', '{"name":"a\\u0000b"}', '{"metadata":{"\\ud800":"\\u0000"}}',
    '{"name":"\\u202egnp.exe"}', '{"scopes":["\\u0000"]}', '{"name":"x","customer_id":"\\u0000"}', '{"name":"\\uZZZZ"}',
    '{"name":"\\', '{"name":"x"', '{"name":"x",}', "{'name':'x'}", '{name:"x"}', "\ufeff{\"name\":\"bom\"}", "null", "[]",
    '"string"', "123", "true", " ", "\n\t", "{}", '{"":""}', '{"__proto__":{"name":"x"}}', '{"constructor":{"prototype":{}}}',
  ),
  // not UTF-8 at all
  fc.uint8Array({ minLength: 1, maxLength: 300 }),
  fc.uint8Array({ minLength: 1, maxLength: 50 }).map((b) => new Uint8Array([...Buffer.from('{"name":"'), ...b, ...Buffer.from('"}')])),
);

/** A request body: structured (valid or not), raw text, or huge. */
export const anyBody: fc.Arbitrary<{ json?: unknown; raw?: string | Uint8Array } | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 2 },
  { arbitrary: plausibleBody.map((json) => ({ json })), weight: 5 },
  { arbitrary: structuredBody.map((json) => ({ json })), weight: 8 },
  { arbitrary: anyJson.map((json) => ({ json })), weight: 1 },
  { arbitrary: rawBodyText.map((raw) => ({ raw })), weight: 5 },
  { arbitrary: fc.integer({ min: 60_000, max: 200_000 }).map((n) => ({ raw: `{"name":"${"x".repeat(n)}"}` })), weight: 1 },
);

// ---------------------------------------------------------------- query, path, headers

/** Query parameters: the documented ones, credential-named ones, unknown ones; odd values. */
export const queryParams: fc.Arbitrary<Array<[string, string | Ref]>> = fc.array(
  fc.tuple(
    fc.oneof(
      { arbitrary: fc.constantFrom("page_size", "page_token", "include_inactive", "instance_id", "action", "target_id", "since", "until", "customer_id"), weight: 8 },
      { arbitrary: fc.constantFrom("api_key", "key", "token", "access_token", "API_KEY", "Token", "apikey", "update_mask", "name"), weight: 1 },
      { arbitrary: weirdString, weight: 1 },
    ),
    fc.oneof(
      { arbitrary: fc.constantFrom("1", "0", "-1", "100", "101", "50", "1e309", "-0", "NaN", "1.5", "99999999999999999999", "true", "false", "TRUE", "1 ", ""), weight: 4 },
      { arbitrary: timestampString, weight: 2 },
      { arbitrary: fc.constantFrom("api_key.issued", "api_key.revoked", "auth.failed", "rate_limit.exceeded", "*"), weight: 1 },
      { arbitrary: uuidLike, weight: 1 },
      { arbitrary: keyId, weight: 1 },
      { arbitrary: ref("targetId"), weight: 1 },
      { arbitrary: ref("customerId"), weight: 1 },
      { arbitrary: fc.oneof(checksumValidKey, malformedKey), weight: 1 },
      { arbitrary: ref("secret"), weight: 1 },
      { arbitrary: anyString(3_000), weight: 3 },
    ),
  ),
  { maxLength: 4 },
);

export type PathPart = string | Ref | { pct: string };

/** Paths under /v1 (and a few around it), as parts resolved and percent-encoded at request time. */
export const pathParts = fc.oneof(
  { arbitrary: fc.constantFrom(["/v1/api-keys"], ["/v1/audit-events"]), weight: 8 },
  { arbitrary: fc.oneof(ref("targetId"), ref("ownId"), ref("foreignId")).map((r) => ["/v1/api-keys/", r]), weight: 8 },
  { arbitrary: keyId.map((id) => ["/v1/api-keys/", id]), weight: 2 },
  { arbitrary: weirdString.map((s) => ["/v1/api-keys/", { pct: s }]), weight: 2 },
  { arbitrary: ref("secret").map((r) => ["/v1/api-keys/", r]), weight: 1 },
  {
    arbitrary: fc.constantFrom(
      ["/v1"], ["/v1/"], ["/v1/api-keys/"], ["/v1//api-keys"], ["/v1/api-keys//"], ["/v1/./api-keys"], ["/v1/api-keys/../audit-events"],
      ["/V1/API-KEYS"], ["/v1/api-keys/%"], ["/v1/api-keys/%ZZ"], ["/v1/api-keys/%C0%AF"], ["/v1/api-keys/%ED%A0%80"], ["/v1/api-keys/%00"],
      ["/v1/api-keys/..%2F..%2Fhealthz"], ["/v1/api-keys#frag"], ["//evil.example/v1/api-keys"], ["/v1/api-keys;jsessionid=1"],
      ["/v1/audit-events/"], ["/v1/audit-events/evt_01JD3X5Q7R2M9T4V6W8Y0Z1A2B"], ["/v1/api-keys/key_01JD3X5Q7R2M9T4V6W8Y0Z1A2B/revoke"],
      ["/v1/api-keys:batchGet"], ["/healthz"], ["/readyz"], ["/"], ["/apikeys.v1.ApiKeyService/ListKeys"],
    ),
    weight: 3,
  },
  { arbitrary: fc.array(fc.oneof(weirdString, fc.constantFrom("api-keys", "audit-events", "..", ".")), { minLength: 1, maxLength: 4 }).map((segs) => ["/v1", ...segs.flatMap((s) => ["/", { pct: s }])]), weight: 2 },
  { arbitrary: fc.integer({ min: 100, max: 8_000 }).map((n) => ["/v1/api-keys/", "k".repeat(n)]), weight: 1 },
) as unknown as fc.Arbitrary<PathPart[]>;

export const methods = fc.oneof(
  { arbitrary: fc.constantFrom("GET", "POST", "PATCH", "DELETE"), weight: 12 },
  { arbitrary: fc.constantFrom("PUT", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "PURGE", "SEARCH", "LOCK", "MKCOL", "REPORT"), weight: 2 },
);

export type AuthSpec =
  | { kind: "none" }
  | { kind: "bearer" | "x-api-key" | "both"; cred: Ref }
  | { kind: "raw-authorization"; value: string }
  | { kind: "raw-x-api-key"; value: string }
  | { kind: "key-as-bearer"; key: string; header: "authorization" | "x-api-key" };

export const authSpec: fc.Arbitrary<AuthSpec> = fc.oneof(
  { arbitrary: fc.constant({ kind: "none" as const }), weight: 2 },
  { arbitrary: ref("credential").map((cred) => ({ kind: "bearer" as const, cred })), weight: 12 },
  { arbitrary: ref("credential").map((cred) => ({ kind: "x-api-key" as const, cred })), weight: 2 },
  { arbitrary: ref("credential").map((cred) => ({ kind: "both" as const, cred })), weight: 1 },
  {
    arbitrary: fc.oneof(checksumValidKey, malformedKey).chain((key) =>
      fc.constantFrom("authorization" as const, "x-api-key" as const).map((header) => ({ kind: "key-as-bearer" as const, key, header })),
    ),
    weight: 3,
  },
  {
    arbitrary: fc
      .oneof(
        latin1String(80).map((s) => `Bearer ${s}`),
        latin1String(80),
        fc.constantFrom("Bearer", "Bearer ", "bearer", "Basic dXNlcjpwYXNz", "Bearer  ", "Token abc", "Bearer a b", "BEARER x", "Bearer\tx"),
        fc.integer({ min: 1_000, max: 12_000 }).map((n) => `Bearer ${"A".repeat(n)}`),
      )
      .map((value) => ({ kind: "raw-authorization" as const, value })),
    weight: 3,
  },
  { arbitrary: latin1String(80).map((value) => ({ kind: "raw-x-api-key" as const, value })), weight: 1 },
);

/** Extra headers: request ids (sane and not), content types, encodings, user agents. */
export const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    "x-request-id": fc.oneof(
      fc.constantFrom("req-1", "abc:def.ghi_jkl", "x".repeat(128), "x".repeat(129), "", " ", "req\tid", "a,b", "../../etc/passwd", "<script>", "null"),
      latin1String(200),
      fc.integer({ min: 200, max: 6_000 }).map((n) => "r".repeat(n)),
    ),
    "content-type": fc.constantFrom(
      "application/json", "application/json; charset=utf-8", "application/json; charset=latin1", "text/plain", "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x", "application/proto", "application/connect+json", "application/grpc", "", "*/*",
    ),
    "content-encoding": fc.constantFrom("gzip", "br", "identity", "deflate"),
    accept: fc.constantFrom("application/json", "text/html", "*/*", "application/proto", ""),
    "user-agent": latin1String(300),
    "x-caller": latin1String(80),
    "x-forwarded-for": fc.constantFrom("1.2.3.4", "::1", "garbage", "1.2.3.4, 5.6.7.8"),
    "connect-protocol-version": fc.constantFrom("1", "2", ""),
  },
  { requiredKeys: [] },
);

export interface RestSpec {
  method: string;
  path: PathPart[];
  query: Array<[string, string | Ref]>;
  auth: AuthSpec;
  headers: Record<string, string>;
  body: { json?: unknown; raw?: string | Uint8Array } | undefined;
}

/** Anything at all: random method, path, query, auth, headers and body. */
export const randomRestSpec: fc.Arbitrary<RestSpec> = fc.record({
  method: methods,
  path: pathParts,
  query: queryParams,
  auth: authSpec,
  headers: extraHeaders,
  body: anyBody,
});

/** A PATCH body a well-behaved client could send. */
export const plausiblePatchBody: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    name: fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() !== "" && !/[\u0000-\u001f\u007f]/.test(s)),
    metadata: fc.dictionary(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ maxLength: 50 }), { maxKeys: 5 }),
    expires_at: fc.oneof(fc.constant(null), fc.integer({ min: 3600, max: 10 * 365 * 86_400 }).map((s) => new Date(Date.now() + s * 1000).toISOString())),
  },
  { requiredKeys: [] },
);

const ownOrTarget = fc.oneof({ arbitrary: ref("targetId"), weight: 3 }, { arbitrary: ref("ownId"), weight: 2 }, { arbitrary: ref("foreignId"), weight: 2 }, { arbitrary: keyId, weight: 1 });
const mostlyValidAuth: fc.Arbitrary<AuthSpec> = fc.oneof({ arbitrary: ref("credential").map((cred) => ({ kind: "bearer" as const, cred })), weight: 8 }, { arbitrary: authSpec, weight: 2 });
const someQuery = (q: fc.Arbitrary<Array<[string, string | Ref]>>) => fc.oneof({ arbitrary: fc.constant([] as Array<[string, string | Ref]>), weight: 2 }, { arbitrary: q, weight: 1 });
const listQuery: fc.Arbitrary<Array<[string, string | Ref]>> = fc.array(
  fc.oneof(
    fc.tuple(fc.constant("page_size"), fc.constantFrom("1", "2", "50", "100")),
    fc.tuple(fc.constant("include_inactive"), fc.constantFrom("true", "false")),
    fc.tuple(fc.constant("instance_id"), ref("instanceId")),
    fc.tuple(fc.constant("customer_id"), ref("customerId")),
    fc.tuple(fc.constant("action"), fc.constantFrom("api_key.issued", "api_key.revoked", "auth.failed")),
    fc.tuple(fc.constant("target_id"), ref("targetId")),
  ),
  { maxLength: 3 },
);

/** A request shaped like one of SPEC §3's routes, with hostile values: reaches the handlers. */
export const routeRestSpec: fc.Arbitrary<RestSpec> = fc.oneof(
  fc.record({ method: fc.constant("GET"), path: fc.constant<PathPart[]>(["/v1/api-keys"]), query: someQuery(fc.oneof(listQuery, queryParams)), auth: mostlyValidAuth, headers: extraHeaders, body: fc.constant(undefined) }),
  fc.record({ method: fc.constant("GET"), path: fc.constant<PathPart[]>(["/v1/audit-events"]), query: someQuery(fc.oneof(listQuery, queryParams)), auth: mostlyValidAuth, headers: extraHeaders, body: fc.constant(undefined) }),
  fc.record({ method: fc.constant("GET"), path: ownOrTarget.map((r): PathPart[] => ["/v1/api-keys/", r]), query: someQuery(listQuery), auth: mostlyValidAuth, headers: extraHeaders, body: fc.constant(undefined) }),
  fc.record({
    method: fc.constant("POST"),
    path: fc.constant<PathPart[]>(["/v1/api-keys"]),
    query: fc.oneof({ arbitrary: fc.constant([] as Array<[string, string | Ref]>), weight: 6 }, { arbitrary: queryParams, weight: 1 }),
    auth: mostlyValidAuth,
    headers: extraHeaders.map((h) => ({ ...h, "content-type": "application/json" })),
    body: fc.oneof({ arbitrary: plausibleBody.map((json) => ({ json })), weight: 3 }, { arbitrary: anyBody, weight: 2 }),
  }),
  fc.record({
    method: fc.constant("PATCH"),
    path: ownOrTarget.map((r): PathPart[] => ["/v1/api-keys/", r]),
    query: fc.oneof({ arbitrary: fc.constant([] as Array<[string, string | Ref]>), weight: 6 }, { arbitrary: queryParams, weight: 1 }),
    auth: mostlyValidAuth,
    headers: extraHeaders,
    body: fc.oneof({ arbitrary: plausiblePatchBody.map((json) => ({ json })), weight: 3 }, { arbitrary: anyBody, weight: 2 }),
  }),
  fc.record({ method: fc.constant("DELETE"), path: ownOrTarget.map((r): PathPart[] => ["/v1/api-keys/", r]), query: someQuery(listQuery), auth: mostlyValidAuth, headers: extraHeaders, body: fc.constant(undefined) }),
);

export const restSpec: fc.Arbitrary<RestSpec> = fc.oneof({ arbitrary: routeRestSpec, weight: 3 }, { arbitrary: randomRestSpec, weight: 2 });

// ---------------------------------------------------------------- raw HTTP/1.1

/** Requests `node:http` would refuse to send: unknown/lowercase methods, raw bytes, bad framing. */
export const rawRequest: fc.Arbitrary<{ lines: string[]; body: string }> = fc.record({
  lines: fc
    .tuple(
      fc.oneof(fc.constantFrom("GET", "HEAD", "POST", "PATCH", "DELETE", "get", "FOO", "G\u00c9T", "", "BREW", "PRI"), latin1String(10)),
      fc.oneof(
        fc.constantFrom("/v1/api-keys", "/v1/audit-events", "/v1/api-keys/é", "/v1/api-keys/\u00ff\u00fe", "/v1/api keys", "*", "http://x/v1/api-keys", "v1/api-keys", "/v1/api-keys?key=a b"),
        latin1String(40).map((s) => `/v1/${s}`),
      ),
      fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1 x", ""),
      fc.array(
        fc.oneof(
          fc.constantFrom(
            "Content-Length: 5", "Content-Length: -1", "Content-Length: 99999999999999999999", "Content-Length: 1, 2", "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked", "Authorization: Bearer a", "Authorization: Bearer b", "X-Api-Key: zpk_live_x", " folded: header",
            "Bad Header: x", "X-Request-Id: a\u00ffb", "Host: a", "Host: b", "Content-Type: application/json", "Expect: 100-continue", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings",
          ),
          fc.tuple(latin1String(20), latin1String(40)).map(([k, v]) => `${k}: ${v}`),
        ),
        { maxLength: 6 },
      ),
    )
    .map(([method, path, version, headers]) => [`${method} ${path} ${version}`.trim(), "Host: fuzz", ...headers]),
  body: fc.oneof(fc.constant(""), fc.constantFrom('{"name":"x"}', "0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "zz\r\n"), latin1String(50)),
});

// ---------------------------------------------------------------- RPC

export const METHODS_RPC = [
  "authenticate",
  "issueKey",
  "listKeys",
  "getKey",
  "updateKey",
  "revokeKey",
  "listAuditEvents",
  "chargeRateLimit",
  "setRateLimit",
] as const;

export type RpcAuth = { kind: "internal" } | { kind: "cred"; cred: Ref } | { kind: "raw"; value: string } | { kind: "none" };

export const rpcAuth: fc.Arbitrary<RpcAuth> = fc.oneof(
  { arbitrary: fc.constant({ kind: "internal" as const }), weight: 10 },
  { arbitrary: ref("credential").map((cred) => ({ kind: "cred" as const, cred })), weight: 4 },
  { arbitrary: fc.oneof(asciiString(80).map((s) => `Bearer ${s}`), asciiString(40), fc.constantFrom("Bearer", "Basic x")).map((value) => ({ kind: "raw" as const, value })), weight: 1 },
  { arbitrary: fc.constant({ kind: "none" as const }), weight: 1 },
);

/** A protobuf Timestamp with any int64 seconds and any int32 nanos (most of them invalid). */
export const anyTimestamp = fc.oneof(
  fc.constant(undefined),
  fc.record({
    seconds: fc.oneof(
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.bigInt({ min: BigInt(Math.floor(Date.now() / 1000)), max: 253402300799n }),
      fc.constantFrom(0n, -1n, 253402300799n, 253402300800n, 8640000000000n, 8640000000001n, -62135596800n, -62135596801n, 2n ** 62n),
    ),
    nanos: fc.oneof(fc.constant(0), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(999_999_999, 1_000_000_000, -1)),
  }),
);

const rpcString = fc.oneof({ arbitrary: weirdString, weight: 10 }, { arbitrary: hugeString(100, 80_000), weight: 1 });
const rpcScopes = fc.oneof(
  fc.array(fc.constantFrom("api_keys:read", "api_keys:write", "audit:read", "*"), { maxLength: 4 }),
  fc.array(weirdString, { maxLength: 60 }),
);
const uint32 = fc.oneof(fc.constantFrom(0, 1, 2, 59, 60, 61, 1_000_000, 1_000_001, 2 ** 31, 2 ** 32 - 1), fc.nat({ max: 2 ** 32 - 1 }));
const maybeRef = (name: string) => fc.oneof({ arbitrary: ref(name), weight: 3 }, { arbitrary: fc.oneof(uuidLike, weirdString, fc.constant("")), weight: 2 });

/** One RPC: a method and its request fields; Ref values are resolved at call time. */
export const rpcSpec = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      method: fc.constant("authenticate" as const),
      req: fc.record({
        key: fc.oneof({ arbitrary: ref("secret"), weight: 4 }, { arbitrary: checksumValidKey, weight: 2 }, { arbitrary: malformedKey, weight: 2 }, { arbitrary: rpcString, weight: 2 }, { arbitrary: fc.constant(""), weight: 1 }),
        instanceId: fc.oneof(fc.constant(""), maybeRef("instanceId")),
        requiredScopes: rpcScopes,
        charge: uint32,
        clientIp: fc.oneof(fc.constant(""), weirdString, hugeString(100, 2_000)),
        userAgent: fc.oneof(fc.constant(""), weirdString, hugeString(100, 2_000)),
      }, { requiredKeys: ["key"] }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      method: fc.constant("issueKey" as const),
      req: fc.record({
        customerId: maybeRef("customerId"),
        name: fc.oneof(rpcString, fc.constantFrom("rpc", "x".repeat(128))),
        instanceId: fc.oneof(fc.constant(""), maybeRef("instanceId")),
        scopes: rpcScopes,
        expiresAt: anyTimestamp,
        environment: fc.oneof(fc.constantFrom("", "live", "test"), weirdString),
        metadata: fc.dictionary(weirdString, weirdString, { maxKeys: 25 }),
      }, { requiredKeys: [] }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      method: fc.constant("listKeys" as const),
      req: fc.record({
        customerId: maybeRef("customerId"),
        pageSize: fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 100, 101, -1)),
        pageToken: fc.oneof(weirdString, fc.constantFrom("", "a2V5XzAx", "=====")),
        includeInactive: fc.boolean(),
        instanceId: fc.oneof(fc.constant(""), maybeRef("instanceId")),
      }, { requiredKeys: [] }),
    }),
  },
  ...(["getKey", "revokeKey"] as const).map((method) => ({
    weight: 2,
    arbitrary: fc.record({
      method: fc.constant(method),
      req: fc.record({ id: fc.oneof(ref("targetId"), ref("foreignId"), keyId, weirdString), customerId: maybeRef("customerId") }, { requiredKeys: [] }),
    }),
  })),
  {
    weight: 2,
    arbitrary: fc.record({
      method: fc.constant("updateKey" as const),
      req: fc.record({
        id: fc.oneof(ref("targetId"), ref("foreignId"), keyId, weirdString),
        customerId: maybeRef("customerId"),
        name: rpcString,
        metadata: fc.dictionary(weirdString, weirdString, { maxKeys: 25 }),
        expiresAt: anyTimestamp,
        updateMask: fc.option(fc.record({ paths: fc.array(fc.oneof(fc.constantFrom("name", "metadata", "expires_at", "scopes", "instance_id"), weirdString), { maxLength: 4 }) }), { nil: undefined }),
      }, { requiredKeys: [] }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      method: fc.constant("listAuditEvents" as const),
      req: fc.record({
        customerId: maybeRef("customerId"),
        pageSize: fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 100, 101)),
        pageToken: fc.oneof(weirdString, fc.constant("")),
        action: fc.oneof(fc.constantFrom("", "api_key.issued", "auth.failed"), weirdString),
        targetId: fc.oneof(fc.constant(""), ref("targetId"), ref("foreignId"), weirdString),
        since: anyTimestamp,
        until: anyTimestamp,
      }, { requiredKeys: [] }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      method: fc.constant("chargeRateLimit" as const),
      req: fc.record({ customerId: fc.oneof(uuidLike, weirdString, fc.constant("")), cost: uint32 }, { requiredKeys: [] }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      method: fc.constant("setRateLimit" as const),
      req: fc.record({
        customerId: fc.oneof(fc.uuid(), weirdString, fc.constant("")),
        capacity: uint32,
        refillPerSecond: fc.oneof(fc.double(), fc.constantFrom(0, -0, 1, 1e6, 1e6 + 1, Number.NaN, Infinity, -Infinity, 5e-324)),
      }, { requiredKeys: [] }),
    }),
  },
);

export const rpcCall = fc.record({
  transport: fc.nat(),
  auth: rpcAuth,
  requestId: fc.option(fc.oneof(asciiString(150), fc.constantFrom("req-1", "", "x".repeat(128))), { nil: null }),
  call: rpcSpec,
});

// ---------------------------------------------------------------- Connect protocol, raw bodies

/** Connect unary calls with a hand-made body: JSON of any shape, or random protobuf bytes. */
/** Now and then a query string on an RPC path, often one with a key in it (SPEC §3 refuses those). */
export const rpcQuery: fc.Arbitrary<Array<[string, string | Ref]> | null> = fc.oneof(
  { arbitrary: fc.constant(null), weight: 6 },
  { arbitrary: queryParams, weight: 1 },
  { arbitrary: fc.tuple(fc.constantFrom("api_key", "token", "access_token", "key", "Token"), fc.oneof(ref("secret"), fc.constant("x"))).map((p) => [p]), weight: 1 },
);

export const connectRaw = fc.record({
  query: rpcQuery,
  method: fc.constantFrom("Authenticate", "IssueKey", "ListKeys", "GetKey", "UpdateKey", "RevokeKey", "ListAuditEvents", "ChargeRateLimit", "SetRateLimit", "NoSuchMethod"),
  auth: rpcAuth,
  contentType: fc.constantFrom("application/json", "application/proto", "application/json; charset=utf-8", "text/plain", "application/grpc+json"),
  body: fc.oneof(
    structuredBody.map((j) => JSON.stringify(j) as string | Uint8Array),
    fc.record({ key: fc.oneof(checksumValidKey, malformedKey, weirdString), charge: fc.oneof(uint32, anyJson), requiredScopes: anyJson }, { requiredKeys: [] }).map((j) => JSON.stringify(j) as string | Uint8Array),
    rawBodyText,
    fc.uint8Array({ maxLength: 200 }),
  ),
});

// ---------------------------------------------------------------- gRPC, raw message bytes

/**
 * A gRPC call whose message bytes are a valid request mangled on the wire (truncated, extended,
 * bit-flipped) or plain random bytes: what a buggy or hostile client in another language sends.
 */
export const grpcRaw = fc.record({
  query: rpcQuery,
  target: fc.constantFrom("PORT" as const, "GRPC_PORT" as const),
  auth: rpcAuth,
  call: rpcSpec,
  mangle: fc.oneof(
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
    fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant("random" as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
  ),
});
