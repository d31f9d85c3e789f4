import { type DescMessage, fromJson, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { ApiKeyService, DenialReason } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { errorCodeForGrpc } from "../../src/domain/errors.js";
import { present, presentEachFlattened, presentFlattened } from "../../src/transport/rest/present.js";
import { rest } from "./rest.js";
import { allRpcClients, type MethodName, type RpcClient } from "./rpc-clients.js";
import type { RunningServer } from "./server.js";

/**
 * One face over every transport for the key lifecycle tests (issue 13): REST on PORT and each RPC
 * client of allRpcClients(). Requests are given in the REST JSON shape (snake_case, `id` and
 * `customer_id` included); answers come back in the REST shape too (RPC answers are rendered by the
 * same `present` the REST layer uses), and failures as our error code plus the HTTP status or gRPC
 * code (over RPC the code is the one the error table gives for the gRPC status), so one table of
 * cases runs unchanged over all of them.
 */
export type ApiResult =
  | { ok: true; body: any; headers: Headers; status?: number }
  | { ok: false; code: string; status?: number; grpc?: number; message: string; headers: Headers };

export interface LifecycleApi {
  name: string;
  call(rpc: "IssueKey" | "RollKey" | "BatchIssueKeys" | "UpdateKey" | "GetKey" | "ListKeys" | "ImportKeys" | "ListAuditEvents",
    req: JsonObject, credential: string, headers?: Record<string, string>): Promise<ApiResult>;
  /** "ok", or why the key is refused: key_disabled, key_expired, key_revoked, unauthenticated. */
  authState(secret: string, internalToken: string): Promise<string>;
  close(): void;
}

/** How REST shapes each answer (rest-handler.ts): the key lifted to the top, or one field as the body. */
const SHAPE: Record<string, { flatten?: string; flattenEach?: string; responseBody?: string }> = {
  IssueKey: { flatten: "key" },
  RollKey: { flatten: "key" },
  BatchIssueKeys: { flattenEach: "data" },
  UpdateKey: { responseBody: "key" },
  GetKey: { responseBody: "key" },
};

const methodOf = (rpc: string) => ApiKeyService.methods.find((m) => m.name === rpc)!;
const lower = (rpc: string) => (rpc[0]!.toLowerCase() + rpc.slice(1)) as MethodName;

function shape(rpc: string, schema: DescMessage, msg: Message): any {
  const s = SHAPE[rpc] ?? {};
  if (s.flatten) return presentFlattened(schema, msg, s.flatten);
  if (s.flattenEach) return presentEachFlattened(schema, msg, s.flattenEach, "key");
  const whole = present(schema, msg);
  return s.responseBody ? whole[s.responseBody] : whole;
}

const DENIAL_CODE: Record<number, string> = {
  [DenialReason.DISABLED]: "key_disabled",
  [DenialReason.EXPIRED]: "key_expired",
  [DenialReason.REVOKED]: "key_revoked",
  [DenialReason.UNKNOWN]: "unauthenticated",
  [DenialReason.MALFORMED]: "unauthenticated",
};

export function rpcApi(client: RpcClient): LifecycleApi {
  return {
    name: client.name,
    async call(rpc, req, credential, headers = {}) {
      const m = methodOf(rpc);
      const input = fromJson(m.input, req as JsonValue);
      const r = await client.call(lower(rpc), input as never, { authorization: `Bearer ${credential}`, ...headers });
      if (r.ok) return { ok: true, body: shape(rpc, m.output, r.res as Message), headers: r.headers };
      // RPC clients get a gRPC status only (no error-code header): our code is the table's for it.
      return { ok: false, code: errorCodeForGrpc(r.code), grpc: r.code, message: r.message, headers: r.metadata };
    },
    async authState(secret, internalToken) {
      const r = await client.call("authenticate", { key: secret }, { authorization: `Bearer ${internalToken}` });
      if (!r.ok) throw new Error(`Authenticate failed: ${r.code} ${r.message}`);
      return r.res.valid ? "ok" : (DENIAL_CODE[r.res.denialReason] ?? `denied:${r.res.denialReason}`);
    },
    close: () => client.close(),
  };
}

/** REST routes of the lifecycle RPCs (the proto's google.api.http options). */
function restRequest(rpc: string, req: JsonObject): { method: string; path: string; body?: JsonObject } {
  const { id, ...rest } = req;
  switch (rpc) {
    case "IssueKey":
      return { method: "POST", path: "/v1/api-keys", body: rest };
    case "BatchIssueKeys":
      return { method: "POST", path: "/v1/api-keys:batchIssue", body: rest };
    case "RollKey":
      return { method: "POST", path: `/v1/api-keys/${encodeURIComponent(String(id))}/roll`, body: rest };
    case "UpdateKey":
      return { method: "PATCH", path: `/v1/api-keys/${encodeURIComponent(String(id))}`, body: rest };
    case "GetKey":
      return { method: "GET", path: `/v1/api-keys/${encodeURIComponent(String(id))}${query(rest)}` };
    case "ListKeys":
      return { method: "GET", path: `/v1/api-keys${query(rest)}` };
    case "ListAuditEvents":
      return { method: "GET", path: `/v1/audit-events${query(rest)}` };
    default:
      throw new Error(`${rpc} has no REST route`);
  }
}

/** Query string; an object value (a map filter) becomes one `<name>.<key>=<value>` per entry. */
function query(params: JsonObject): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [mk, mv] of Object.entries(v)) q.append(`${k}.${mk}`, String(mv));
    } else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function restApi(server: Pick<RunningServer, "url">): LifecycleApi {
  return {
    name: "rest",
    async call(rpc, req, credential, headers = {}) {
      const r = restRequest(rpc, req);
      const res = await rest(server, r.method, r.path, { key: credential, body: r.body, headers });
      if (res.status < 300) return { ok: true, body: res.body, headers: res.headers, status: res.status };
      return { ok: false, code: res.body?.error?.code ?? `http:${res.status}`, status: res.status, message: res.body?.error?.message ?? "", headers: res.headers };
    },
    async authState(secret) {
      const res = await rest(server, "GET", "/v1/api-keys?page_size=1", { key: secret });
      // 403: authenticated, only without api_keys:read.
      return res.status === 200 || res.status === 403 ? "ok" : res.body.error.code;
    },
    close: () => {},
  };
}

/** REST first, then every RPC transport. */
export const allLifecycleApis = (server: RunningServer): LifecycleApi[] => [restApi(server), ...allRpcClients(server).map(rpcApi)];

/** Retries an assertion until it passes or `timeoutMs` is over (then its last failure is thrown). */
export async function passesWithin(fn: () => Promise<void>, timeoutMs = 2000, everyMs = 50): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await fn();
      return Date.now() - started;
    } catch (e) {
      if (Date.now() - started >= timeoutMs) throw e;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
