import type { DescMessage, JsonValue, Message } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";

/**
 * Renders a message in the REST shape of SPEC §3, which differs from canonical protobuf JSON:
 * snake_case names, every field present (unset optional fields and messages are `null`, lists
 * `[]`, maps `{}`), 64-bit integers as JSON numbers, and timestamps as ISO 8601 with milliseconds.
 */
export function present(schema: DescMessage, msg: Message): { [k: string]: JsonValue } {
  const out: { [k: string]: JsonValue } = {};
  const record = msg as unknown as Record<string, unknown>;
  for (const field of schema.fields) {
    const value = record[field.localName];
    switch (field.fieldKind) {
      case "list":
        out[field.name] = (value as unknown[]).map((v) => (field.message ? present(field.message, v as Message) : scalar(v)));
        break;
      case "map":
        out[field.name] = Object.fromEntries(
          Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, field.message ? present(field.message, v as Message) : scalar(v)]),
        );
        break;
      case "message":
        out[field.name] =
          value === undefined
            ? null
            : field.message.typeName === "google.protobuf.Timestamp"
              ? new Date(timestampMs(value as Timestamp)).toISOString()
              : present(field.message, value as Message);
        break;
      case "enum":
        out[field.name] = field.enum.value[value as number]?.name ?? (value as number);
        break;
      default:
        out[field.name] = value === undefined ? null : scalar(value);
    }
  }
  return out;
}

const scalar = (v: unknown): JsonValue => (typeof v === "bigint" ? Number(v) : (v as JsonValue));

/** `present`, with the message field `field` lifted into the top level (REST's issue response). */
export function presentFlattened(schema: DescMessage, msg: Message, field: string): { [k: string]: JsonValue } {
  const { [field]: inner, ...rest } = present(schema, msg);
  return { ...(inner as { [k: string]: JsonValue }), ...rest };
}

/** `present`, with the message field `inner` of every element of the list `list` lifted (REST's batch issue). */
export function presentEachFlattened(schema: DescMessage, msg: Message, list: string, inner: string): { [k: string]: JsonValue } {
  const field = schema.fields.find((f) => f.name === list);
  const whole = present(schema, msg);
  if (!field?.message) return whole;
  const items = (msg as unknown as Record<string, Message[]>)[field.localName] ?? [];
  return { ...whole, [list]: items.map((item) => presentFlattened(field.message!, item, inner)) };
}
