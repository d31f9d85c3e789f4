import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { ApiKeyService } from "../../../gen/apikeys/v1/api_key_service_pb.js";
import type { HealthState } from "../health-state.js";
import { grpcJsContext } from "./grpc-js-context.js";
import { addGrpcJsHealthAndReflection } from "./grpc-js-extras.js";
import { encodeAuthenticateResponse } from "./authenticate-response-encoder.js";

type UnaryFn = (req: unknown, ctx: HandlerContext) => Promise<unknown>;
type Encode = (m: never) => Uint8Array;

/** Responses written without protobuf-es's reflective encoder: the per-request RPC of a gateway. */
const HAND_ENCODED: Partial<Record<string, Encode>> = { authenticate: encodeAuthenticateResponse };

/**
 * Native gRPC on `GRPC_PORT`: @grpc/grpc-js's server hosting the very same ServiceImpl as
 * connect-node (3-6x its unary throughput on Node 20, hence the hot path for internal callers).
 * This adapter only translates: a method table from the generated descriptor, protobuf-es
 * binary (de)serializers, a HandlerContext per call built from the metadata and peer, and
 * ConnectError -> gRPC status. Credentials, request ids and errors stay in the service.
 */
export function createGrpcJsServer(impl: ServiceImpl<typeof ApiKeyService>, opts: { maxMessageBytes: number; health: HealthState; log: Logger; addServices?: (server: grpc.Server) => void }) {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": opts.maxMessageBytes,
    "grpc.max_concurrent_streams": 256,
    "grpc.keepalive_permit_without_calls": 1,
    // channelz (grpc-js's call/socket statistics) wraps every call; no channelz service is served.
    "grpc.enable_channelz": 0,
  });
  const definition: Record<string, grpc.MethodDefinition<any, any>> = {};
  const handlers: Record<string, grpc.handleUnaryCall<any, any>> = {};
  for (const method of ApiKeyService.methods) {
    const path = `/${ApiKeyService.typeName}/${method.name}`;
    const encode = HAND_ENCODED[method.localName] ?? ((m: MessageShape<DescMessage>) => toBinary(method.output, create(method.output, m as never)));
    definition[method.localName] = {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, m)),
      requestDeserialize: (b: Buffer) => {
        try {
          return fromBinary(method.input, b);
        } catch (e) {
          return new UnparsableRequest(e instanceof Error ? e.message : String(e));
        }
      },
      responseSerialize: (m: MessageShape<DescMessage>) => asBuffer(encode(m as never)),
      responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
    };
    const fn = (impl as unknown as Record<string, UnaryFn>)[method.localName]!.bind(impl);
    handlers[method.localName] = (call, callback) => {
      if (call.request instanceof UnparsableRequest) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: `malformed protobuf request: ${call.request.reason}` });
        return;
      }
      let done = false;
      const ctx = grpcJsContext(ApiKeyService, method, path, call, () => done);
      fn(call.request, ctx).then(
        (out) => {
          done = true;
          // Without headers of our own, grpc-js sends its default ones with the message.
          if (hasEntries(ctx.responseHeader)) call.sendMetadata(metadataOf(ctx.responseHeader));
          callback(null, out);
        },
        (err: unknown) => {
          done = true;
          const ce = ConnectError.from(err);
          callback({ code: ce.code as number as grpc.status, details: ce.rawMessage, metadata: metadataOf(ce.metadata) });
        },
      );
    };
  }
  server.addService(definition as grpc.ServiceDefinition, handlers);
  opts.addServices?.(server);
  addGrpcJsHealthAndReflection(server, opts.health);

  return {
    async listen(host: string, port: number): Promise<number> {
      const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
      return new Promise((resolve, reject) =>
        server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
      );
    },
    /** Graceful: refuses new calls, lets running ones finish, then forces after the deadline. */
    close(deadlineMs: number): Promise<void> {
      return new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, deadlineMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

/** What requestDeserialize hands on when the bytes are not a valid message (grpc-js would say INTERNAL). */
class UnparsableRequest {
  constructor(readonly reason: string) {}
}

/** grpc-js copies the message into its frame: a view over the encoder's bytes is enough. */
const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

function hasEntries(h: Headers): boolean {
  for (const _ of h.keys()) return true;
  return false;
}

function metadataOf(h: Headers): grpc.Metadata {
  const md = new grpc.Metadata();
  h.forEach((v, k) => {
    if (!k.startsWith("grpc-") && k !== "content-type") md.set(k, v);
  });
  return md;
}
