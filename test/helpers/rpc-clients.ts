import { create, type DescMessage, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";

type Methods = typeof ApiKeyService.method;
export type MethodName = keyof Methods;
type In<M extends MethodName> = Methods[M]["input"];
type Out<M extends MethodName> = Methods[M]["output"];

/** An RPC outcome as every transport reports it: a message, or a gRPC status code. */
export type RpcResult<M extends MethodName> =
  | { ok: true; res: MessageShape<Out<M>>; headers: Headers }
  | { ok: false; code: number; message: string; metadata: Headers };

/** One test body, many transports: each client calls the same RPCs the same way. */
export interface RpcClient {
  name: string;
  call<M extends MethodName>(
    method: M,
    req: MessageInitShape<In<M>>,
    headers?: Record<string, string>,
  ): Promise<RpcResult<M>>;
  close(): void;
}

function connectEsClient(name: string, transport: Transport, close = () => {}): RpcClient {
  const client = createClient(ApiKeyService, transport);
  return {
    name,
    async call(method, req, headers = {}) {
      let responseHeaders = new Headers();
      try {
        const fn = client[method] as unknown as (r: unknown, o: unknown) => Promise<never>;
        const res = await fn(req, { headers, onHeader: (h: Headers) => (responseHeaders = h), timeoutMs: 10_000 });
        return { ok: true, res, headers: responseHeaders };
      } catch (e) {
        const err = ConnectError.from(e);
        return { ok: false, code: err.code, message: err.rawMessage, metadata: err.metadata };
      }
    },
    close,
  };
}

export const connectClient = (baseUrl: string) =>
  connectEsClient("connect", createConnectTransport({ baseUrl, httpVersion: "1.1" }));
export const grpcOverConnectNodeClient = (baseUrl: string) =>
  connectEsClient("grpc (connect-es client)", createGrpcTransport({ baseUrl }));
export const grpcWebClient = (baseUrl: string) =>
  connectEsClient("grpc-web", createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }));

/** The reference gRPC client: @grpc/grpc-js with protobuf-es serializers. */
export function grpcJsClient(address: string, label = "grpc-js", options: grpc.ChannelOptions = {}): RpcClient {
  const definition: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const m of ApiKeyService.methods) {
    definition[m.localName] = {
      path: `/${ApiKeyService.typeName}/${m.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: MessageShape<DescMessage>) => Buffer.from(toBinary(m.input, v)),
      requestDeserialize: (b: Buffer) => fromBinary(m.input, b),
      responseSerialize: (v: MessageShape<DescMessage>) => Buffer.from(toBinary(m.output, v)),
      responseDeserialize: (b: Buffer) => fromBinary(m.output, b),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(definition, ApiKeyService.typeName);
  const client = new Ctor(address, grpc.credentials.createInsecure(), options) as unknown as Record<string, Function> & grpc.Client;
  return {
    name: label,
    call(method, req, headers = {}) {
      const desc = ApiKeyService.method[method];
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      return new Promise((resolve) => {
        let responseHeaders = new Headers();
        const call = client[method]!.call(
          client,
          create(desc.input as DescMessage, req as never),
          md,
          { deadline: Date.now() + 10_000 },
          (err: grpc.ServiceError | null, res: never) => {
            if (err) {
              const metadata = new Headers();
              for (const [k, v] of Object.entries(err.metadata?.getMap() ?? {})) metadata.set(k, String(v));
              resolve({ ok: false, code: err.code, message: err.details, metadata });
            } else resolve({ ok: true, res, headers: responseHeaders });
          },
        );
        call.on("metadata", (m: grpc.Metadata) => {
          responseHeaders = new Headers();
          for (const [k, v] of Object.entries(m.getMap())) responseHeaders.set(k, String(v));
        });
      });
    },
    close: () => client.close(),
  };
}

/** Every RPC transport on PORT (and GRPC_PORT when the server has one). */
export function allRpcClients(server: { url: string; port: number; grpcPort: number | null }): RpcClient[] {
  const clients = [
    connectClient(server.url),
    grpcOverConnectNodeClient(server.url),
    grpcWebClient(server.url),
    grpcJsClient(`127.0.0.1:${server.port}`, "grpc-js -> PORT"),
  ];
  if (server.grpcPort) clients.push(grpcJsClient(`127.0.0.1:${server.grpcPort}`, "grpc-js -> GRPC_PORT"));
  return clients;
}
