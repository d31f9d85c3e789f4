import { STATUS_CODES } from "node:http";
import { type DescEnum, type DescField, type DescMessage, type DescService, ScalarType } from "@bufbuild/protobuf";
import { ApiKeyService } from "../../../gen/apikeys/v1/api_key_service_pb.js";
import { ERROR_TABLE, type ErrorCode } from "../../domain/errors.js";
import { SUCCESS } from "../rest/rest-handler.js";
import { type RestRoute, restRoutes } from "../rest/routes.js";
import { INPUT_RULES, REQUIRED_BODY_FIELDS } from "./input-rules.js";
import type { ProtoComments } from "./proto-comments.js";

/**
 * The OpenAPI 3.1 document of the REST shape `PORT` serves, built from the same things the server
 * runs, so it cannot drift from it:
 * - operations from `restRoutes()` (the proto's `google.api.http` options, as the REST handler
 *   reads them) and the success status, `Location` and flattening of the REST handler's `SUCCESS`;
 * - response schemas that mirror `present()` (SPEC §3: snake_case, every field present, unset
 *   optional fields and messages `null`, lists and maps never absent, 64-bit integers as JSON
 *   numbers, timestamps as ISO 8601 strings);
 * - request schemas that mirror `decodeRequest()` (protobuf JSON of the input message: path
 *   parameters, query parameters for the other fields of GET/DELETE, the body for `body: "*"`);
 * - error responses from the one error table (`ERROR_TABLE`), with its closed set of codes.
 * Descriptions come from the proto comments (`ProtoComments`, read from a `buf build` image).
 * A field kind that `present()` or `decodeRequest()` does not handle is refused here, so a proto
 * change that the REST shape does not support fails generation instead of being documented wrong.
 */
export interface OpenApiOptions {
  comments: ProtoComments;
  version: string;
  /** The REST routes; the server's own by default. */
  routes?: RestRoute[];
  service?: DescService;
}

type Schema = Record<string, unknown>;
const ref = (kind: "schemas" | "responses" | "headers", name: string) => ({ $ref: `#/components/${kind}/${name}` });

export function openApiDocument(opts: OpenApiOptions): Schema {
  const service = opts.service ?? ApiKeyService;
  const routes = opts.routes ?? restRoutes();
  const doc = new DocumentBuilder(opts.comments);
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const path = route.template;
    const op = doc.operation(route);
    const links = linksFrom(route, routes);
    if (Object.keys(links).length) {
      const success = Object.values(op.responses as Record<string, Schema>)[0]!;
      success.links = links;
    }
    (paths[path] ??= {})[route.httpMethod.toLowerCase()] = op;
  }
  const tags = [...new Set(routes.map(tagOf))].sort().map((name) => ({ name, description: `The routes under \`/v1/${name}\`.` }));
  return {
    openapi: "3.1.0",
    info: {
      title: "zpk API",
      version: opts.version,
      summary: "Issue, list, update, revoke and verify API keys; per-customer rate limits; audit trail.",
      description: infoDescription(opts.comments(service.typeName)),
    },
    servers: [{ url: "/", description: "The zpk server this document was fetched from (PORT, default 8080)" }],
    security: [{ bearerAuth: [] }, { apiKeyHeader: [] }],
    tags,
    paths,
    components: {
      securitySchemes: {
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "zpk_live_… / zpk_test_…",
          description: "`Authorization: Bearer <key>` with one of the customer's keys.",
        },
        apiKeyHeader: {
          type: "apiKey",
          in: "header",
          name: "X-API-Key",
          description: "`X-API-Key: <key>`, the same keys as `bearerAuth` (never the internal credential).",
        },
      },
      headers: HEADERS,
      responses: doc.errorResponses(),
      schemas: doc.schemas,
    },
  };
}

/**
 * OpenAPI links (what a client, or Schemathesis's stateful phase, can call next with a value from
 * this response), derived from the route templates: an item route `<collection>/{p}...` follows
 * (1) any route on the same item, with the same `p`; (2) the collection's routes whose response
 * has a field `p` (the created item) or a list `data` of objects with a field `p` (a page).
 */
function linksFrom(from: RestRoute, routes: RestRoute[]): Record<string, Schema> {
  const links: Record<string, Schema> = {};
  const fromItem = itemOf(from);
  for (const to of routes) {
    const item = itemOf(to);
    if (!item || to === from) continue;
    let value: string | undefined;
    if (fromItem && fromItem.prefix === item.prefix && fromItem.param === item.param) {
      value = `$request.path.${item.param}`;
    } else if (!fromItem && from.template === item.collection && from.httpMethod !== "DELETE") {
      value = responsePointer(from, item.param);
    }
    if (value && to.params.length === 1) links[to.method.name] = { operationId: to.method.name, parameters: { [item.param]: value } };
  }
  return links;
}

function itemOf(route: RestRoute): { prefix: string; collection: string; param: string } | undefined {
  const m = /^(.*?)\/\{([a-z_]+)\}/.exec(route.template);
  return m ? { prefix: m[0], collection: m[1]!, param: m[2]! } : undefined;
}

function responsePointer(route: RestRoute, param: string): string | undefined {
  const shape = SUCCESS[route.method.name];
  if (shape?.status === 204) return undefined;
  let message: DescMessage | undefined = route.method.output;
  if (shape?.flatten) {
    const inner = message.fields.find((f) => f.name === shape.flatten);
    if (inner?.message?.fields.some((f) => f.name === param)) return `$response.body#/${param}`;
  }
  if (route.responseBody) message = message.fields.find((f) => f.name === route.responseBody)?.message;
  if (!message) return undefined;
  if (message.fields.some((f) => f.name === param && f.fieldKind === "scalar")) return `$response.body#/${param}`;
  const data = message.fields.find((f) => f.name === "data" && f.fieldKind === "list" && f.message);
  if (data?.message?.fields.some((f) => f.name === param)) return `$response.body#/data/0/${param}`;
  return undefined;
}

const tagOf = (route: RestRoute) => route.template.split("/")[2] ?? "default";

function infoDescription(serviceComment: string | undefined): string {
  return [
    serviceComment ?? "",
    "This document is generated from the proto (`google.api.http` options, message descriptors and comments) and describes exactly the REST/JSON shape the server answers on `PORT`. The RPC surface (gRPC, Connect, gRPC-Web on `PORT`; native gRPC on `GRPC_PORT`) is the proto itself, published at `GET /v1/proto`; gRPC server reflection is served too.",
    "**Authentication**: one of the customer's keys, as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A key in the URL query string is refused with `400 key_in_url` and never used.",
    "**Rate limits**: every request authenticated by a customer key takes one token from the customer's bucket and carries `X-RateLimit-Limit` and `X-RateLimit-Remaining`; an empty bucket answers `429 rate_limited` with `Retry-After`.",
    "**Errors**: every error is `{\"error\":{\"code\",\"message\"},\"request_id\"}` with a code of the closed set `ErrorCode`. Every response carries `X-Request-Id` (the caller's, if it sent a sane one).",
    "**JSON**: snake_case; fields that can be unset are always present and `null` when unset; lists are `[]` and maps `{}` when empty; timestamps are RFC 3339 UTC strings; 64-bit integers are JSON numbers.",
  ]
    .filter(Boolean)
    .join("\n\n");
}

/** The field of each element that presentEachFlattened() lifts (rest-handler.ts passes "key"). */
const EACH_FLATTENED_FIELD = "key";
const IDEMPOTENCY_NOTE =
  "Makes the call safe to retry: for 24 h the same customer with the same key and the same parameters gets the first answer again (secret included); other parameters, or a retry while the first call runs, are 409. 1-255 printable ASCII characters; use a random UUID.";

const RATE_LIMIT_NOTE = "Sent on every request authenticated by a customer key (not for the internal credential).";
const HEADERS: Record<string, Schema> = {
  "X-Request-Id": {
    description: "The request id: the caller's `X-Request-Id` when it is 1-128 characters of `A-Za-z0-9._:-`, else one of ours (`req_` + UUID). Also in error bodies and the audit trail.",
    required: true,
    schema: { type: "string", minLength: 1, maxLength: 128 },
  },
  "X-RateLimit-Limit": {
    description: `The capacity of the customer's token bucket. ${RATE_LIMIT_NOTE}`,
    schema: { type: "integer", minimum: 0 },
  },
  "X-RateLimit-Remaining": {
    description: `Whole tokens left in the customer's bucket after this request. ${RATE_LIMIT_NOTE}`,
    schema: { type: "integer", minimum: 0 },
  },
  "Retry-After": {
    description: "Seconds until the bucket holds a token again.",
    required: true,
    schema: { type: "integer", minimum: 0 },
  },
  "Retry-After-Optional": {
    description: "Seconds after which a retry may succeed, when the server knows (e.g. a call with the same Idempotency-Key still running).",
    schema: { type: "integer", minimum: 0 },
  },
  Location: {
    description: "The path of the new resource.",
    required: true,
    schema: { type: "string", format: "uri-reference" },
  },
};

/** Statuses an operation cannot answer: 405 is for methods a path does not document. */
const NOT_FOR_OPERATIONS = new Set<ErrorCode>(["method_not_allowed"]);
/** Codes only a request with a body can get. */
const BODY_ONLY = new Set<ErrorCode>(["payload_too_large"]);

const responseName = (status: number) => (STATUS_CODES[status] ?? `Status${status}`).replace(/[^A-Za-z]/g, "");

class DocumentBuilder {
  readonly schemas: Record<string, Schema> = {};
  private readonly names = new Map<string, string>();

  constructor(private readonly comments: ProtoComments) {}

  operation(route: RestRoute): Schema {
    const m = route.method;
    const comment = this.comments(`${m.parent.typeName}.${m.name}`);
    const input = m.input;
    const parameters: Schema[] = route.params.map((name) => {
      const field = fieldNamed(input, name);
      return { name, in: "path", required: true, description: this.fieldDescription(field), schema: { type: "string", minLength: 1 } };
    });
    let requestBody: Schema | undefined;
    const mapFilters: string[] = [];
    if (SUCCESS[m.name]?.status === 201 && route.httpMethod === "POST") {
      // The creating routes are the idempotent ones (service/idempotent-call.ts).
      parameters.push({
        name: "Idempotency-Key",
        in: "header",
        required: false,
        description: IDEMPOTENCY_NOTE,
        schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$" },
      });
    }
    if (route.body === "*") {
      const fields = input.fields.filter((f) => !route.params.includes(f.name));
      requestBody = {
        required: (REQUIRED_BODY_FIELDS[input.typeName] ?? []).length > 0,
        content: { "application/json": { schema: this.inputObject(input, fields) } },
      };
    } else if (route.body === "") {
      // decodeRequest() takes a string map field as `name.<key>=<value>` query parameters, which
      // OpenAPI cannot name (deepObject is `name[key]`): described on the operation instead.
      for (const field of input.fields) {
        if (route.params.includes(field.name)) continue;
        if (field.fieldKind === "map") {
          mapFilters.push(`\`${field.name}.<key>=<value>\` (one entry of \`${field.name}\`, repeatable with other keys): ${this.fieldDescription(field) ?? ""}`);
          continue;
        }
        const raw = this.queryParamSchema(field);
        const schema = raw && withRules(field, raw);
        if (!schema) continue;
        parameters.push({
          name: field.name,
          in: "query",
          required: false,
          description: this.fieldDescription(field),
          schema,
          ...(field.fieldKind === "list" ? { style: "form", explode: true } : {}),
        });
      }
    } else {
      throw new Error(`${m.name}: http body "${route.body}" is not supported by the REST handler`);
    }
    const shape = SUCCESS[m.name];
    const status = shape?.status ?? 200;
    const headers: Record<string, Schema> = {
      "X-Request-Id": ref("headers", "X-Request-Id"),
      "X-RateLimit-Limit": ref("headers", "X-RateLimit-Limit"),
      "X-RateLimit-Remaining": ref("headers", "X-RateLimit-Remaining"),
    };
    if (shape?.location) headers.Location = ref("headers", "Location");
    const success: Schema = { description: STATUS_CODES[status] ?? "Success", headers };
    if (status !== 204) {
      success.content = { "application/json": { schema: this.successSchema(route, shape?.flatten, shape?.flattenEach) } };
    }
    const responses: Record<string, Schema> = { [String(status)]: success };
    for (const s of this.errorStatuses(route.body === "*")) responses[String(s)] = ref("responses", responseName(s));
    const [summary, ...rest] = splitSummary(comment ?? m.name);
    const description = [rest.length ? comment : "", ...mapFilters.map((f) => `Query filter ${f}`)].filter(Boolean).join("\n\n");
    return {
      operationId: m.name,
      tags: [tagOf(route)],
      summary,
      ...(description ? { description } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
    };
  }

  private errorStatuses(withBody: boolean): number[] {
    const statuses = new Set<number>();
    for (const [code, row] of Object.entries(ERROR_TABLE) as [ErrorCode, { http: number }][]) {
      if (NOT_FOR_OPERATIONS.has(code) || (!withBody && BODY_ONLY.has(code))) continue;
      statuses.add(row.http);
    }
    return [...statuses].sort((a, b) => a - b);
  }

  /** One response per HTTP status of the error table, its `code` narrowed to that status's codes. */
  errorResponses(): Record<string, Schema> {
    const byStatus = new Map<number, ErrorCode[]>();
    for (const [code, row] of Object.entries(ERROR_TABLE) as [ErrorCode, { http: number }][]) {
      byStatus.set(row.http, [...(byStatus.get(row.http) ?? []), code]);
    }
    this.schemas.ErrorCode = {
      type: "string",
      description: "The closed set of error codes (SPEC §3), with the HTTP status each is answered with:\n\n" +
        Object.entries(ERROR_TABLE).map(([code, row]) => `- \`${code}\`: ${row.http}`).join("\n"),
      enum: Object.keys(ERROR_TABLE),
    };
    this.schemas.Error = errorSchema();
    const out: Record<string, Schema> = {};
    for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      if (codes.every((c) => NOT_FOR_OPERATIONS.has(c))) continue;
      const headers: Record<string, Schema> = {
        "X-Request-Id": ref("headers", "X-Request-Id"),
        "X-RateLimit-Limit": ref("headers", "X-RateLimit-Limit"),
        "X-RateLimit-Remaining": ref("headers", "X-RateLimit-Remaining"),
      };
      headers["Retry-After"] = codes.includes("rate_limited") ? ref("headers", "Retry-After") : ref("headers", "Retry-After-Optional");
      out[responseName(status)] = {
        description: `${STATUS_CODES[status]}: ${codes.map((c) => `\`${c}\``).join(", ")}.`,
        headers,
        content: {
          "application/json": {
            schema: { allOf: [ref("schemas", "Error")], properties: { error: { properties: { code: { enum: codes } } } } },
          },
        },
      };
    }
    return out;
  }

  private successSchema(route: RestRoute, flatten: string | undefined, flattenEach?: string): Schema {
    const output = route.method.output;
    if (flattenEach) {
      // presentEachFlattened(): every element of the list field has its `key` message lifted.
      const list = fieldNamed(output, flattenEach);
      if (list.fieldKind !== "list" || !list.message) throw new Error(`${route.method.name}: ${flattenEach} is not a list of messages`);
      const item = list.message;
      const inner = fieldNamed(item, EACH_FLATTENED_FIELD);
      if (inner.fieldKind !== "message") throw new Error(`${item.typeName}.${EACH_FLATTENED_FIELD} is not a message`);
      const itemName = `${item.name}`;
      if (!this.schemas[itemName]) {
        this.schemas[itemName] = this.outputObject(item, [...inner.message.fields, ...item.fields.filter((f) => f !== inner)]);
        this.names.set(itemName, item.typeName);
      }
      const name = `${output.name}`;
      if (!this.schemas[name]) {
        const obj = this.outputObject(output, output.fields);
        (obj.properties as Record<string, Schema>)[list.name] = { type: "array", items: ref("schemas", itemName), ...describe(this.fieldDescription(list)) };
        this.schemas[name] = obj;
        this.names.set(name, output.typeName);
      }
      return ref("schemas", name);
    }
    if (flatten) {
      const inner = fieldNamed(output, flatten);
      if (inner.fieldKind !== "message") throw new Error(`${route.method.name}: flattened field ${flatten} is not a message`);
      const name = `${output.name}`;
      if (!this.schemas[name]) {
        const own = output.fields.filter((f) => f !== inner);
        this.schemas[name] = this.outputObject(output, [...inner.message.fields, ...own]);
        this.names.set(name, output.typeName);
      }
      return ref("schemas", name);
    }
    if (route.responseBody) {
      const field = fieldNamed(output, route.responseBody);
      // The service always sets the message it answers with; a GetKey without a key is a 404.
      return field.fieldKind === "message" && !isTimestamp(field.message) ? this.messageRef(field.message) : this.outputField(field);
    }
    return this.messageRef(output);
  }

  /** A component schema for `present(message)`. */
  private messageRef(message: DescMessage): Schema {
    let name = message.name;
    if (this.names.has(name) && this.names.get(name) !== message.typeName) name = message.typeName.replace(/\./g, "_");
    if (!this.names.has(name)) {
      this.names.set(name, message.typeName);
      this.schemas[name] = {}; // placeholder: recursive messages refer to themselves
      this.schemas[name] = this.outputObject(message, message.fields);
    }
    return ref("schemas", name);
  }

  private outputObject(message: DescMessage, fields: readonly DescField[]): Schema {
    const properties: Record<string, Schema> = {};
    for (const field of fields) {
      if (field.oneof) throw new Error(`${field.parent.typeName}.${field.name}: present() does not support oneof fields`);
      properties[field.name] = { ...this.outputField(field), ...describe(this.fieldDescription(field)) };
    }
    return {
      type: "object",
      ...describe(this.comments(message.typeName)),
      required: fields.map((f) => f.name),
      additionalProperties: false,
      properties,
    };
  }

  /** The JSON `present()` writes for a field. */
  private outputField(field: DescField): Schema {
    switch (field.fieldKind) {
      case "list":
        return { type: "array", items: field.message ? this.messageRef(field.message) : field.enum ? enumSchema(field.enum) : outputScalar(field.scalar!, field) };
      case "map":
        return {
          type: "object",
          additionalProperties: field.mapKind === "message" ? this.messageRef(field.message) : field.mapKind === "enum" ? enumSchema(field.enum) : outputScalar(field.scalar, field),
        };
      case "message":
        if (isTimestamp(field.message)) return { type: ["string", "null"], format: "date-time" };
        return { oneOf: [this.messageRef(field.message), { type: "null" }] };
      case "enum":
        if (field.presence !== IMPLICIT) throw new Error(`${field.parent.typeName}.${field.name}: present() does not support optional enums`);
        return enumSchema(field.enum);
      default: {
        const s = outputScalar(field.scalar, field);
        return field.presence === IMPLICIT ? s : nullable(s);
      }
    }
  }

  /** The object `decodeRequest()` accepts as a JSON body: protobuf JSON, every field optional, `null` for unset. */
  private inputObject(message: DescMessage, fields: readonly DescField[]): Schema {
    const properties: Record<string, Schema> = {};
    const required = (REQUIRED_BODY_FIELDS[message.typeName] ?? []).filter((name) => fields.some((f) => f.name === name));
    for (const field of fields) {
      const schema = withRules(field, this.inputField(field));
      properties[field.name] = { ...(required.includes(field.name) ? schema : nullable(schema)), ...describe(this.fieldDescription(field)) };
    }
    return {
      type: "object",
      ...describe(this.comments(message.typeName)),
      ...(required.length ? { required } : {}),
      additionalProperties: false,
      properties,
    };
  }

  private inputField(field: DescField): Schema {
    switch (field.fieldKind) {
      case "list":
        return { type: "array", items: field.message ? this.inputMessage(field.message) : field.enum ? enumSchema(field.enum) : inputScalar(field.scalar!) };
      case "map":
        return {
          type: "object",
          additionalProperties: field.mapKind === "message" ? this.inputMessage(field.message) : field.mapKind === "enum" ? enumSchema(field.enum) : inputScalar(field.scalar),
        };
      case "message":
        return this.inputMessage(field.message);
      case "enum":
        return enumSchema(field.enum);
      default:
        return inputScalar(field.scalar);
    }
  }

  private inputMessage(message: DescMessage): Schema {
    if (isTimestamp(message)) return { type: "string", format: "date-time", description: "RFC 3339, e.g. `2030-01-01T00:00:00Z`" };
    if (message.typeName === "google.protobuf.FieldMask") {
      return { type: "string", description: "Comma-separated field names in lowerCamelCase (protobuf JSON), e.g. `name,expiresAt`." };
    }
    if (message.typeName.startsWith("google.protobuf.")) throw new Error(`${message.typeName} in a request is not documented yet`);
    const name = `${message.name}Input`;
    if (!this.schemas[name]) {
      this.schemas[name] = {};
      this.schemas[name] = this.inputObject(message, message.fields);
    }
    return ref("schemas", name);
  }

  /** A query parameter's schema, or undefined for a field a query string cannot carry. */
  private queryParamSchema(field: DescField): Schema | undefined {
    switch (field.fieldKind) {
      case "scalar":
        return queryScalar(field.scalar);
      case "enum":
        return enumSchema(field.enum);
      case "list":
        if (field.listKind === "scalar") return { type: "array", items: queryScalar(field.scalar) };
        if (field.listKind === "enum") return { type: "array", items: enumSchema(field.enum) };
        return undefined;
      case "message":
        return isTimestamp(field.message) ? { type: "string", format: "date-time" } : undefined;
      default:
        return undefined;
    }
  }

  private fieldDescription(field: DescField): string | undefined {
    return this.comments(`${field.parent.typeName}.${field.name}`);
  }
}

const IMPLICIT = 2; // FeatureSet_FieldPresence.IMPLICIT

/** A request field's schema with the domain's rules for that field name (input-rules.ts). */
const withRules = (field: DescField, schema: Schema): Schema => ({ ...schema, ...(INPUT_RULES[field.name] ?? {}) });

const isTimestamp = (m: DescMessage) => m.typeName === "google.protobuf.Timestamp";
const describe = (text: string | undefined) => (text ? { description: text } : {});
const fieldNamed = (message: DescMessage, name: string): DescField => {
  const f = message.fields.find((x) => x.name === name);
  if (!f) throw new Error(`${message.typeName} has no field ${name}`);
  return f;
};

function nullable(s: Schema): Schema {
  if (typeof s.type === "string") return { ...s, type: [s.type, "null"] };
  if (Array.isArray(s.type)) return s.type.includes("null") ? s : { ...s, type: [...s.type, "null"] };
  return { oneOf: [s, { type: "null" }] };
}

function enumSchema(e: DescEnum): Schema {
  return { type: "string", enum: e.values.map((v) => v.name) };
}

const UINT32 = { type: "integer", format: "int64", minimum: 0, maximum: 4294967295 };

/** A scalar as `present()` writes it (64-bit integers as JSON numbers, exact up to 2^53). */
function outputScalar(t: ScalarType, field: DescField): Schema {
  switch (t) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { ...UINT32 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "integer", format: "int64" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "integer", format: "int64", minimum: 0 };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    default:
      throw new Error(`${field.parent.typeName}.${field.name}: present() does not support ${ScalarType[t]} fields`);
  }
}

/** A scalar as protobuf JSON accepts it in a body. */
function inputScalar(t: ScalarType): Schema {
  switch (t) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { ...UINT32 };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    default: // 64-bit: a number or a decimal string
      return { type: ["integer", "string"], format: "int64" };
  }
}

/** A scalar in a query string: `decodeRequest()` converts numbers and booleans from their text. */
function queryScalar(t: ScalarType): Schema {
  switch (t) {
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { ...UINT32 };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "integer", format: "int64" };
    default:
      return { type: "string" };
  }
}

/** `{"error":{"code","message"},"request_id"}`. */
function errorSchema(): Schema {
  return {
    type: "object",
    description: "Every error body (SPEC §3). Never a stack trace or a secret.",
    required: ["error", "request_id"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        additionalProperties: false,
        properties: {
          code: ref("schemas", "ErrorCode"),
          message: { type: "string", description: "For people: names the field or rule at fault. Not for matching on." },
        },
      },
      request_id: { type: "string", description: "The same as the `X-Request-Id` response header." },
    },
  };
}

/** First sentence as the summary (Redoc lists operations by it), the whole comment as description. */
function splitSummary(comment: string): string[] {
  const m = /^(.+?[.!?])(\s|$)/s.exec(comment);
  const first = (m?.[1] ?? comment).replace(/\s+/g, " ");
  return first === comment.trim() ? [first] : [first, comment];
}
