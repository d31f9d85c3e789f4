import { fromBinary } from "@bufbuild/protobuf";
import { type DescriptorProto, type FileDescriptorProto, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/**
 * The comments of the proto source, by fully qualified name (`apikeys.v1.Key`,
 * `apikeys.v1.Key.name`, `apikeys.v1.ApiKeyService.IssueKey`, `apikeys.v1.DenialReason.DENIAL_REASON_MALFORMED`).
 *
 * protoc-gen-es embeds descriptors without source info, so the generated code in gen/ carries no
 * comments; a `buf build` image does (source info is kept unless excluded). The OpenAPI generator
 * reads the image at generation time and looks descriptions up here by name, so the structure of
 * the document still comes from the very descriptors the server runs.
 */
export type ProtoComments = (fullName: string) => string | undefined;

/** Reads the comments of every file of a binary `FileDescriptorSet` (a `buf build -o x.binpb` image). */
export function protoComments(image: Uint8Array): ProtoComments {
  const byName = new Map<string, string>();
  for (const file of fromBinary(FileDescriptorSetSchema, image).file) collectFile(file, byName);
  return (fullName) => byName.get(fullName);
}

// Field numbers of FileDescriptorProto / DescriptorProto / ... used in SourceCodeInfo paths.
const FILE_MESSAGE = 4, FILE_ENUM = 5, FILE_SERVICE = 6;
const MESSAGE_FIELD = 2, MESSAGE_NESTED = 3, MESSAGE_ENUM = 4;
const ENUM_VALUE = 2, SERVICE_METHOD = 2;

function collectFile(file: FileDescriptorProto, out: Map<string, string>): void {
  const text = new Map<string, string>();
  for (const loc of file.sourceCodeInfo?.location ?? []) {
    const comment = cleanComment(loc.leadingComments);
    if (comment) text.set(loc.path.join("."), comment);
  }
  const put = (name: string, path: number[]) => {
    const comment = text.get(path.join("."));
    if (comment) out.set(name, comment);
  };
  const pkg = file.package ? `${file.package}.` : "";
  const walkEnum = (e: { name: string; value: { name: string }[] }, scope: string, path: number[]) => {
    put(`${scope}${e.name}`, path);
    e.value.forEach((v, i) => put(`${scope}${e.name}.${v.name}`, [...path, ENUM_VALUE, i]));
  };
  const walkMessage = (m: DescriptorProto, scope: string, path: number[]) => {
    const name = `${scope}${m.name}`;
    put(name, path);
    m.field.forEach((f, i) => put(`${name}.${f.name}`, [...path, MESSAGE_FIELD, i]));
    m.nestedType.forEach((n, i) => walkMessage(n, `${name}.`, [...path, MESSAGE_NESTED, i]));
    m.enumType.forEach((e, i) => walkEnum(e, `${name}.`, [...path, MESSAGE_ENUM, i]));
  };
  file.messageType.forEach((m, i) => walkMessage(m, pkg, [FILE_MESSAGE, i]));
  file.enumType.forEach((e, i) => walkEnum(e, pkg, [FILE_ENUM, i]));
  file.service.forEach((s, i) => {
    put(`${pkg}${s.name}`, [FILE_SERVICE, i]);
    s.method.forEach((m, j) => put(`${pkg}${s.name}.${m.name}`, [FILE_SERVICE, i, SERVICE_METHOD, j]));
  });
}

/**
 * A `//` comment block as Markdown: the one leading space of each line removed, lines of a
 * paragraph joined (proto comments are wrapped at 100 columns), paragraphs and list items kept.
 */
export function cleanComment(raw: string | undefined): string {
  if (!raw) return "";
  const lines = raw.replace(/\n$/, "").split("\n").map((l) => l.replace(/^ /, "").trimEnd());
  const paragraphs: string[] = [];
  let current: string[] = [];
  const flush = () => {
    if (current.length) paragraphs.push(current.join(" "));
    current = [];
  };
  for (const line of lines) {
    if (line.trim() === "") flush();
    else if (/^\s*[*-] /.test(line)) {
      flush();
      current.push(line.trim());
    } else current.push(line.trim());
  }
  flush();
  // List items stay one per line; other paragraphs are separated by a blank line.
  return paragraphs.reduce((acc, p, i) => {
    if (i === 0) return p;
    const list = /^[*-] /.test(p) && /^[*-] /.test(paragraphs[i - 1]!);
    return acc + (list ? "\n" : "\n\n") + p;
  }, "");
}
