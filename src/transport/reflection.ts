import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { file_apikeys_v1_api_key_service } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  file_grpc_reflection_v1_reflection,
  type ServerReflectionRequest,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";

const ROOTS = [file_apikeys_v1_api_key_service, file_grpc_health_v1_health, file_grpc_reflection_v1_reflection];

/** Every file the served services need, with their imports, by name. */
function collect(files: DescFile[], into = new Map<string, DescFile>()): Map<string, DescFile> {
  for (const f of files) {
    if (into.has(f.proto.name)) continue;
    into.set(f.proto.name, f);
    collect(f.dependencies, into);
  }
  return into;
}

/** Fully-qualified symbol -> the file declaring it (services, methods, messages, enums). */
function symbols(files: Iterable<DescFile>): Map<string, DescFile> {
  const out = new Map<string, DescFile>();
  for (const f of files) {
    for (const s of f.services) {
      out.set(s.typeName, f);
      for (const m of s.methods) out.set(`${s.typeName}.${m.name}`, f);
    }
    const walk = (msgs: DescFile["messages"]) => {
      for (const m of msgs) {
        out.set(m.typeName, f);
        walk(m.nestedMessages);
        for (const e of m.nestedEnums) out.set(e.typeName, f);
      }
    };
    walk(f.messages);
    for (const e of f.enums) out.set(e.typeName, f);
  }
  return out;
}

/**
 * gRPC server reflection v1, transport-neutral: both ports' reflection services answer with this,
 * so grpcurl-style tools can discover the API without the proto files. It answers list_services,
 * file_by_filename and file_containing_symbol; a file is sent with all its imports.
 */
export function createReflection(extraRoots: DescFile[] = []) {
  const roots = [...ROOTS, ...extraRoots];
  const files = collect(roots);
  const bySymbol = symbols(files.values());
  const services = [...roots.flatMap((f) => f.services.map((s) => s.typeName))];
  const withDeps = (f: DescFile) =>
    [...collect([f]).values()].map((d) => toBinary(FileDescriptorProtoSchema, d.proto));

  function answer(req: ServerReflectionRequest) {
    const base = { validHost: req.host, originalRequest: req };
    const notFound = (what: string) => ({
      ...base,
      messageResponse: { case: "errorResponse" as const, value: { errorCode: 5, errorMessage: `${what} not found` } },
    });
    switch (req.messageRequest.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse" as const, value: { service: services.map((name) => ({ name })) } } };
      case "fileByFilename": {
        const f = files.get(req.messageRequest.value);
        return f ? { ...base, messageResponse: { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDeps(f) } } } : notFound(req.messageRequest.value);
      }
      case "fileContainingSymbol": {
        const f = bySymbol.get(req.messageRequest.value);
        return f ? { ...base, messageResponse: { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDeps(f) } } } : notFound(req.messageRequest.value);
      }
      default:
        return { ...base, messageResponse: { case: "errorResponse" as const, value: { errorCode: 12, errorMessage: "not supported" } } };
    }
  }

  return answer;
}
