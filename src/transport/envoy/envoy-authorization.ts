import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
} from "../../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { REQUEST_ID_HEADER } from "../../service/call-context.js";
import { peerAddress } from "../grpc/peer-address.js";
import { encodeDenied, encodeOk } from "./check-response-encoder.js";
import type { GatewayCheck, GatewayDecision, GatewayRequest } from "../gateway/gateway-check.js";

/** google.rpc.Code of a CheckResponse: Envoy allows on OK and denies on anything else. */
const RPC_CODE = { OK: 0, INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAUTHENTICATED: 16 } as const;
const CHECK_PATH = `/${Authorization.typeName}/${Authorization.method.check.name}`;

/**
 * Envoy external authorization v3 (`envoy.service.auth.v3.Authorization/Check`, the API of
 * Envoy's ext_authz filter, Istio and Gloo) on the grpc-js server of GRPC_PORT. It reads the
 * CheckRequest into a GatewayRequest, lets the gateway check decide (through the service's
 * Authenticate), and writes the decision as Envoy expects it: OkHttpResponse with identity
 * headers (overwriting any the client sent), headers to remove and x-ratelimit-* for the client;
 * DeniedHttpResponse with our status, headers and JSON body. A failure that is no answer about
 * the client's request (the gateway's credential refused, storage down) is a gRPC error, so
 * Envoy's `failure_mode_allow` / `status_on_error` decide.
 */
export function addEnvoyAuthorization(server: grpc.Server, check: GatewayCheck, log: Logger): void {
  server.addService(
    {
      check: {
        path: CHECK_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: CheckRequest) => Buffer.from(toBinary(CheckRequestSchema, m)),
        requestDeserialize: (b: Buffer) => {
          try {
            return fromBinary(CheckRequestSchema, b);
          } catch (e) {
            return new Unparsable(e instanceof Error ? e.message : String(e));
          }
        },
        // The handler answers with the CheckResponse's bytes (check-response-encoder.ts).
        responseSerialize: (m: Buffer) => m,
        responseDeserialize: (b: Buffer) => fromBinary(CheckResponseSchema, b),
      },
    } as grpc.ServiceDefinition,
    {
      check: (call: grpc.ServerUnaryCall<CheckRequest | Unparsable, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const req = call.request;
        if (req instanceof Unparsable) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `malformed protobuf request: ${req.reason}` });
          return;
        }
        check(new EnvoyRequest(req, call), "envoy").then(
          (decision) => callback(null, checkResponseOf(decision)),
          (err: unknown) => {
            const ce = ConnectError.from(err);
            if (ce.code === 13) log.error({ err }, "envoy Check failed");
            callback({ code: ce.code as number as grpc.status, details: ce.rawMessage });
          },
        );
      },
    },
  );
}

class Unparsable {
  constructor(readonly reason: string) {}
}

/**
 * A CheckRequest as the gateway check reads it. A class, not an object literal of arrows: tsx's
 * keepNames would name each arrow with Object.defineProperty on every Check (~0.6 µs each).
 */
class EnvoyRequest implements GatewayRequest {
  readonly uri: string;
  readonly clientIp: string | null;
  readonly requestId: string | null;
  readonly gatewayCredential: string | null;
  readonly peer: string | null;
  private readonly headers = new Map<string, string>();
  private readonly ext: Record<string, string>;

  constructor(req: CheckRequest, call: grpc.ServerUnaryCall<unknown, unknown>) {
    const attrs = req.attributes;
    const http = attrs?.request?.http;
    const headers = this.headers;
    for (const [k, v] of Object.entries(http?.headers ?? {})) headers.set(k.toLowerCase(), v);
    if (headers.size === 0 && http?.headerMap) {
      // encode_raw_headers: key and raw_value, repeated names not merged (merged here as HTTP does).
      const decoder = new TextDecoder();
      for (const h of http.headerMap.headers) {
        const k = h.key.toLowerCase();
        const v = h.rawValue.length > 0 ? decoder.decode(h.rawValue) : h.value;
        const prev = headers.get(k);
        headers.set(k, prev === undefined ? v : `${prev}, ${v}`);
      }
    }
    const source = attrs?.source?.address?.address;
    const auth = call.metadata.get("authorization")[0];
    this.ext = attrs?.contextExtensions ?? {};
    this.uri = http?.path ?? "";
    this.clientIp = source?.case === "socketAddress" ? source.value.address || null : null;
    this.requestId = http?.id || headers.get(REQUEST_ID_HEADER) || null;
    this.gatewayCredential = typeof auth === "string" ? auth : null;
    this.peer = peerAddress(call.getPeer());
  }

  header(name: string): string | undefined {
    return this.headers.get(name);
  }

  headerNames(): Iterable<string> {
    return this.headers.keys();
  }

  requirement(name: string): string | undefined {
    return this.ext[name];
  }
}

function checkResponseOf(d: GatewayDecision): Buffer {
  if (d.allow) {
    // An unbound key: x-zpk-instance-id is removed rather than set empty, so a forged one is gone.
    const set = d.upstream.filter(([, v]) => v !== "");
    const unset = d.upstream.filter(([, v]) => v === "").map(([k]) => k);
    return encodeOk({ code: RPC_CODE.OK, headers: set, remove: [...d.remove, ...unset], client: d.client });
  }
  const code =
    d.status === 401 ? RPC_CODE.UNAUTHENTICATED
    : d.status === 403 ? RPC_CODE.PERMISSION_DENIED
    : d.status === 429 ? RPC_CODE.RESOURCE_EXHAUSTED
    : d.status === 400 ? RPC_CODE.INVALID_ARGUMENT
    : RPC_CODE.INTERNAL;
  return encodeDenied({ code, message: d.message, httpStatus: d.status, headers: d.headers, body: d.body });
}
