import {
  type DescField,
  type DescMessage,
  fromJson,
  type JsonObject,
  type JsonValue,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { invalid } from "../../domain/errors.js";
import type { RestRoute } from "./routes.js";

/**
 * Builds a request message from a REST call: path parameters, query parameters and the JSON body
 * are merged into one protobuf-JSON object and decoded by protobuf-es `fromJson`, so types are
 * checked by the schema itself and unknown fields are refused (SPEC §3: 400 with the field named).
 * For PATCH with an `update_mask` field, the mask is the set of fields present in the body
 * (AIP-134), so `"expires_at": null` clears a field.
 */
export function decodeRequest(
  route: RestRoute,
  pathParams: Record<string, string>,
  query: URLSearchParams,
  body: JsonValue | undefined,
): Message {
  const schema = route.method.input;
  const json: JsonObject = {};
  for (const name of query.size === 0 ? NONE : new Set(query.keys())) {
    if (route.body === "*") throw invalid(`unknown query parameter "${name}"`);
    const entry = mapEntryParam(schema, name);
    if (entry) {
      // `metadata.<name>=<value>`: one entry of a string map field (issue 13's metadata filter).
      const values = query.getAll(name);
      if (values.length > 1) throw invalid(`query parameter "${name}" must be given once`);
      const map = (json[entry.field.name] ??= {}) as JsonObject;
      map[entry.key] = values[0]!;
      continue;
    }
    const field = fieldOf(schema, name);
    if (!field || route.params.includes(field.name)) throw invalid(`unknown query parameter "${name}"`);
    json[field.name] = queryValue(field, query.getAll(name));
  }
  if (route.body === "*" && body !== undefined) {
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw invalid("the request body must be a JSON object");
    }
    for (const [name, value] of Object.entries(body)) {
      const field = fieldOf(schema, name);
      if (!field || route.params.includes(field.name)) throw invalid(`unknown field "${name}"`);
      json[field.name] = value;
    }
    const mask = schema.fields.find((f) => f.message?.typeName === FieldMaskSchema.typeName);
    if (mask && route.httpMethod === "PATCH" && !(mask.name in json)) {
      json[mask.name] = Object.keys(json).map((name) => fieldOf(schema, name)!.jsonName).join(",");
    }
  }
  for (const [name, value] of Object.entries(pathParams)) json[name] = value;
  try {
    return fromJson(schema, json);
  } catch (e) {
    throw invalid(explain(e, schema, culprit(schema, json)));
  }
}

/** The first field that fails to decode on its own: names the field when the error does not. */
function culprit(schema: DescMessage, json: JsonObject): DescField | undefined {
  for (const [name, value] of Object.entries(json)) {
    try {
      fromJson(schema, { [name]: value });
    } catch {
      return fieldOf(schema, name);
    }
  }
  return undefined;
}

/** `<map field>.<key>` for a string-to-string map field of the request, else null. */
function mapEntryParam(schema: DescMessage, name: string): { field: DescField; key: string } | null {
  const dot = name.indexOf(".");
  if (dot <= 0 || dot === name.length - 1) return null;
  const field = fieldOf(schema, name.slice(0, dot));
  if (field?.fieldKind !== "map" || field.mapKey !== ScalarType.STRING || field.mapKind !== "scalar") return null;
  return { field, key: name.slice(dot + 1) };
}

const NONE: readonly string[] = [];

const fieldOf = (schema: DescMessage, name: string): DescField | undefined =>
  schema.fields.find((f) => f.name === name || f.jsonName === name);

const NUMBERS = new Set([ScalarType.INT32, ScalarType.UINT32, ScalarType.SINT32, ScalarType.FIXED32,
  ScalarType.SFIXED32, ScalarType.DOUBLE, ScalarType.FLOAT]);

/** Query strings are untyped: give each value the JSON type its field expects. */
function queryValue(field: DescField, values: string[]): JsonValue {
  const scalar = field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  const one = (v: string): JsonValue => {
    if (scalar === ScalarType.BOOL) return v === "true" ? true : v === "false" ? false : v;
    if (scalar !== undefined && NUMBERS.has(scalar)) return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    return v;
  };
  if (field.fieldKind === "list") return values.map(one);
  if (values.length > 1) throw invalid(`query parameter "${field.name}" must be given once`);
  return one(values[0]!);
}

/** protobuf-es error text -> a message naming the field in its REST (snake_case) form. */
function explain(e: unknown, schema: DescMessage, suspect: DescField | undefined): string {
  const text = e instanceof Error ? e.message : String(e);
  const m = /field ([\w.]+)\.(\w+)/.exec(text);
  if (m || suspect) {
    const field = schema.fields.find((f) => f.name === m?.[2] || f.localName === m?.[2]) ?? suspect;
    const name = field?.name ?? m?.[2];
    if (field?.message?.typeName === "google.protobuf.Timestamp") return `${name} must be an RFC 3339 timestamp`;
    return `invalid value for ${name}: ${field ? expected(field) : "wrong type"}`;
  }
  return `invalid request: ${text.replace(/^cannot decode message [\w.]+ from JSON: /, "")}`;
}

function expected(f: DescField): string {
  switch (f.fieldKind) {
    case "list":
      return "expected an array";
    case "map":
      return "expected an object of string values";
    case "message":
      return "expected an object";
    case "enum":
      return "expected an enum name";
    default:
      return f.scalar === ScalarType.STRING ? "expected a string" : f.scalar === ScalarType.BOOL ? "expected a boolean" : "expected a number";
  }
}
