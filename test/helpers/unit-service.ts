import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { ConnectError, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { pino } from "pino";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { createDomain } from "../../src/domain/domain.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { createApiKeyService, serviceDeps } from "../../src/service/api-key-service.js";
import { kPeerAddress } from "../../src/service/call-context.js";
import { Credentials } from "../../src/service/credentials.js";
import { instrumentCalls } from "../../src/service/instrument-calls.js";
import { LeanHandlerContext } from "../../src/transport/lean-handler-context.js";
import { MemoryStore } from "./memory-store.js";

export const INTERNAL_TOKEN = "unit-internal-token-0123456789abcdef";
export const INTERNAL = `Bearer ${INTERNAL_TOKEN}`;

/** A clock the test moves by hand: token refill, expiry and audit times without sleeping. */
export class TestClock {
  constructor(public ms = Date.now()) {}
  readonly now = () => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface UnitOptions {
  capacity?: number;
  refillPerSecond?: number;
  /** MAX_ACTIVE_KEYS_PER_CUSTOMER (default 1000). */
  maxActiveKeys?: number;
  /** RATE_LIMIT_LEASE_MS (default 0: every charge is a store step). */
  reserveMs?: number;
}

type Methods = typeof ApiKeyService.method;
type MethodName = keyof Methods;
type InputOf<M extends MethodName> = Methods[M]["input"] extends DescMessage ? MessageInitShape<Methods[M]["input"]> : never;
type OutputOf<M extends MethodName> = Methods[M]["output"] extends DescMessage ? MessageShape<Methods[M]["output"]> : never;

/**
 * The whole service in one process for the fast layer: the real domain and the real ServiceImpl
 * (wrapped by instrumentCalls, as every transport serves it) over a MemoryStore, with a hand-moved
 * clock. `call` invokes a method as a transport does: the request message built from its schema,
 * a LeanHandlerContext with the caller's headers and peer address, the answer as the full response
 * message. Background writers are not
 * started; `flush()` writes what they hold, as a shutdown would.
 */
export function unitService(opts: UnitOptions = {}) {
  const store = new MemoryStore();
  const clock = new TestClock();
  const log = pino({ level: "silent" });
  const domain = createDomain(store, {
    rateLimit: { capacity: opts.capacity ?? 1000, refillPerSecond: opts.refillPerSecond ?? 1 },
    rateLimitReserveMs: opts.reserveMs ?? 0,
    usageFlushIntervalMs: 3_600_000,
    auditFlushIntervalMs: 3_600_000,
    auditAggregateIntervalMs: 3_600_000,
    auditFailureIntervalMs: 1000,
    auditRetention: { retentionMs: 0, intervalMs: 3_600_000, batch: 1000 },
    keyCache: { maxKeys: 1000, maxBytes: 64 << 20, maxUnknown: 1000, ttlMs: 3_600_000, pollIntervalMs: 3_600_000 },
    maxActiveKeysPerCustomer: opts.maxActiveKeys ?? 1000,
    importPrefixes: [],
    idempotency: { leaseMs: 30_000 },
    now: clock.now,
  }, log);
  const impl = instrumentCalls({ log, metrics: createMetrics() }).service(
    createApiKeyService(serviceDeps(domain, new Credentials(INTERNAL_TOKEN, domain.authenticator), { dashboardOrigin: null, trustedProxies: new Set() })).impl,
  );

  const call = <M extends MethodName>(method: M, input: InputOf<M>, authorization: string | null, headers: Record<string, string> = {}) =>
    callImpl(impl, method, input, authorization, headers);

  /** The ConnectError a call fails with (fails the test if it succeeds). */
  async function failure<M extends MethodName>(method: M, input: InputOf<M>, authorization: string | null, headers?: Record<string, string>) {
    try {
      await call(method, input, authorization, headers);
    } catch (e) {
      if (e instanceof ConnectError) return e;
      throw e;
    }
    throw new Error(`${method} succeeded; a failure was expected`);
  }

  /** Issues a key as the internal caller and returns it with its secret. */
  async function issue(customerId: string, input: Partial<InputOf<"issueKey">> = {}) {
    const { res } = await call("issueKey", { customerId, name: "k", ...input } as InputOf<"issueKey">, INTERNAL);
    return { key: res.key!, secret: res.secret, bearer: `Bearer ${res.secret}` };
  }

  return { store, clock, domain, impl, call, failure, issue, flush: () => domain.flush() };
}

export type UnitService = ReturnType<typeof unitService>;

/**
 * Invokes `method` of a ServiceImpl as a transport does: the request message built from its
 * schema, a LeanHandlerContext with the caller's headers and peer address, the answer as the full
 * response message (as the wire would carry it: defaults filled in) with the response headers.
 */
export async function callImpl<M extends MethodName>(
  impl: ServiceImpl<typeof ApiKeyService>,
  method: M,
  input: InputOf<M>,
  authorization: string | null,
  headers: Record<string, string> = {},
) {
  const desc = ApiKeyService.method[method];
  const requestHeader = new Headers(headers);
  if (authorization !== null) requestHeader.set("authorization", authorization);
  const ctx = new LeanHandlerContext({
    service: ApiKeyService,
    method: desc,
    protocolName: "unit",
    requestMethod: "POST",
    url: `http://127.0.0.1/${ApiKeyService.typeName}/${desc.name}`,
    requestHeader,
    values: createContextValues().set(kPeerAddress, "127.0.0.9"),
  });
  const fn = (impl as unknown as Record<string, (req: unknown, ctx: unknown) => Promise<unknown>>)[method]!;
  const out = await fn(create(desc.input as DescMessage, input as never), ctx);
  const res = create(desc.output as DescMessage, out as never) as OutputOf<M>;
  return { res, headers: ctx.responseHeader };
}
