import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import {
  ApiKeyService,
  BatchIssueKeysRequestSchema,
  BatchIssueKeysResponseSchema,
  DenialReason,
  type IssueKeyRequest,
  IssueKeyRequestSchema,
  IssueKeyResponseSchema,
  RollKeyRequestSchema,
  RollKeyResponseSchema,
} from "../../gen/apikeys/v1/api_key_service_pb.js";
import type { Idempotency } from "../domain/idempotency.js";
import type { KeyImporter } from "../domain/import-keys.js";
import type { IssueInput } from "../domain/key-manager.js";
import { type KeyRoller, validGraceStarts } from "../domain/roll.js";
import type { Authenticator } from "../domain/authenticator.js";
import { forbidden, invalid } from "../domain/errors.js";
import { actorOf, type KeyManager } from "../domain/key-manager.js";
import type { RateLimiter } from "../domain/rate-limit/rate-limiter.js";
import type { Caller } from "../domain/types.js";
import {
  optionalUuid,
  validEnvironment,
  validMetadata,
  validName,
  validScopes,
  validUuid,
} from "../domain/validation.js";
import type { Metrics } from "../observability/metrics.js";
import { kCallerPrefix, originOf, requestIdOf } from "./call-context.js";
import type { Credentials } from "./credentials.js";
import { auditEventMessage, keyMessage, msOf } from "./messages.js";
import { canonicalParams, idempotencyKeyOf, idempotencyScope } from "./idempotent-call.js";
import { toConnectError } from "./to-connect-error.js";

export interface ServiceDeps {
  credentials: Credentials;
  keys: KeyManager;
  roller: KeyRoller;
  importer: KeyImporter;
  idempotency: Idempotency;
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  log: Logger;
  metrics: Metrics;
  now: () => number;
}

const DENIAL: Record<string, DenialReason> = {
  malformed: DenialReason.MALFORMED,
  unknown: DenialReason.UNKNOWN,
  expired: DenialReason.EXPIRED,
  revoked: DenialReason.REVOKED,
  wrong_instance: DenialReason.WRONG_INSTANCE,
  missing_scope: DenialReason.MISSING_SCOPE,
  rate_limited: DenialReason.RATE_LIMITED,
  disabled: DenialReason.DISABLED,
};

/** IssueKeyRequest -> validated domain input (IssueKey and each BatchIssueKeys entry). */
function issueInput(req: IssueKeyRequest): IssueInput {
  return {
    name: validName(req.name),
    instanceId: optionalUuid(req.instanceId, "instance_id"),
    scopes: validScopes(req.scopes),
    expiresAt: msOf(req.expiresAt),
    environment: validEnvironment(req.environment),
    metadata: validMetadata(req.metadata),
  };
}

/** Longest string worth running the key format check on (keys are 64-65 chars). */
const MAX_KEY_CHARS = 256;
/** RPCs called on every request of a gateway: logged at debug, not info. */
const HOT = new Set(["Authenticate", "ChargeRateLimit"]);

/**
 * The one implementation of ApiKeyService, served by every transport. It decides the caller
 * (credentials.ts), turns request messages into validated domain input, calls the domain, and
 * maps results back to messages. It is the only layer that produces ConnectErrors.
 */
export function createApiKeyService(deps: ServiceDeps): ServiceImpl<typeof ApiKeyService> {
  const { credentials, keys, roller, importer, idempotency, authenticator, rateLimiter, log, metrics, now } = deps;

  /** Runs one RPC: request id first, every failure through toConnectError, one log line, metrics. */
  async function run<T>(ctx: HandlerContext, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const requestId = requestIdOf(ctx);
    const rpc = ctx.method.name;
    let code = "ok";
    try {
      return await fn();
    } catch (err) {
      const ce = toConnectError(err, ctx, log);
      code = Code[ce.code] ?? String(ce.code);
      throw ce;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const transport = ctx.protocolName;
      metrics.requests.inc(`${rpc} ${transport} ${code}`, () => ({ method: rpc, transport, code }));
      metrics.duration.observe({ method: rpc, transport }, seconds);
      const level = HOT.has(rpc) && code === "ok" ? "debug" : "info";
      // The line is built only when it will be written: hot RPCs run at LOG_LEVEL=info by default.
      if (log.isLevelEnabled(level)) {
        const line = { rpc, transport, requestId, code, ms: +(seconds * 1000).toFixed(2), keyPrefix: ctx.values.get(kCallerPrefix) ?? undefined };
        log[level](line, code === "ok" ? "rpc" : "rpc failed");
      }
    }
  }

  /** The customer a call acts for: a key's own, or the one an internal caller names. */
  function customerFor(caller: Caller, requested: string): string {
    if (caller.kind === "key") {
      if (requested !== "" && requested.toLowerCase() !== caller.key.customerId) {
        throw forbidden("customer_id is for internal callers: a key acts only for its own customer; omit it");
      }
      return caller.key.customerId;
    }
    if (requested === "") throw invalid("customer_id is required for internal callers");
    return validUuid(requested, "customer_id");
  }

  return {
    listKeys: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const page = await keys.list(caller, customerFor(caller, req.customerId), {
          pageSize: req.pageSize,
          pageToken: req.pageToken,
          includeInactive: req.includeInactive,
          instanceId: optionalUuid(req.instanceId, "instance_id"),
          metadata: validMetadata(req.metadata, "metadata filter"),
        });
        const at = now();
        return {
          data: page.items.map((k) => keyMessage(k, at)),
          nextPageToken: page.nextPageToken ?? undefined,
          totalSize: page.totalSize,
        };
      }),

    getKey: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const key = await keys.get(caller, customerFor(caller, req.customerId), req.id);
        return { key: keyMessage(key, now()) };
      }),

    issueKey: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const customerId = customerFor(caller, req.customerId);
        const bytes = await idempotency.run(
          idempotencyScope(caller), customerId, idempotencyKeyOf(ctx), canonicalParams("IssueKey", IssueKeyRequestSchema, req),
          async () => {
            const p = keys.prepareIssue(caller, customerId, issueInput(req), originOf(ctx));
            const msg = create(IssueKeyResponseSchema, { key: keyMessage(p.result.key, now()), secret: p.result.secret });
            return { ...p, result: toBinary(IssueKeyResponseSchema, msg) };
          },
        );
        return fromBinary(IssueKeyResponseSchema, bytes);
      }),

    batchIssueKeys: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const customerId = customerFor(caller, req.customerId);
        const bytes = await idempotency.run(
          idempotencyScope(caller), customerId, idempotencyKeyOf(ctx), canonicalParams("BatchIssueKeys", BatchIssueKeysRequestSchema, req),
          async () => {
            const inputs = req.keys.map((k, i) => {
              if (k.customerId !== "" && k.customerId.toLowerCase() !== customerId) {
                throw invalid(`keys[${i}].customer_id must be empty or the batch's customer`);
              }
              try {
                return issueInput(k);
              } catch (e) {
                if (e instanceof Error) e.message = `keys[${i}]: ${e.message}`;
                throw e;
              }
            });
            const p = keys.prepareBatchIssue(caller, customerId, inputs, originOf(ctx));
            const at = now();
            const msg = create(BatchIssueKeysResponseSchema, {
              data: p.result.map((x) => ({ key: keyMessage(x.key, at), secret: x.secret })),
            });
            return { ...p, result: toBinary(BatchIssueKeysResponseSchema, msg) };
          },
        );
        return fromBinary(BatchIssueKeysResponseSchema, bytes);
      }),

    rollKey: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const customerId = customerFor(caller, req.customerId);
        const bytes = await idempotency.run(
          idempotencyScope(caller), customerId, idempotencyKeyOf(ctx), canonicalParams("RollKey", RollKeyRequestSchema, req),
          async () => {
            const p = await roller.prepareRoll(caller, customerId, req.id, {
              graceSeconds: req.graceSeconds ?? null,
              graceStarts: validGraceStarts(req.graceStarts),
              expiresAt: msOf(req.expiresAt),
            }, originOf(ctx));
            const msg = create(RollKeyResponseSchema, { key: keyMessage(p.result.key, now()), secret: p.result.secret });
            return { ...p, result: toBinary(RollKeyResponseSchema, msg) };
          },
        );
        return fromBinary(RollKeyResponseSchema, bytes);
      }),

    importKeys: (req, ctx) =>
      run(ctx, async () => {
        const caller = credentials.internal(ctx);
        const customerId = validUuid(req.customerId, "customer_id");
        const imported = await importer.import(caller, customerId, req.keys.map((k, i) => {
          try {
            return {
              name: validName(k.name),
              instanceId: optionalUuid(k.instanceId, "instance_id"),
              scopes: validScopes(k.scopes),
              expiresAt: msOf(k.expiresAt),
              environment: validEnvironment(k.environment),
              metadata: validMetadata(k.metadata),
              sha256: k.sha256,
              plaintext: k.plaintext,
              prefix: k.prefix,
            };
          } catch (e) {
            if (e instanceof Error) e.message = `keys[${i}]: ${e.message}`;
            throw e;
          }
        }), originOf(ctx));
        const at = now();
        return { keys: imported.map((k) => keyMessage(k, at)) };
      }),

    updateKey: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const customerId = customerFor(caller, req.customerId);
        // customer_id addresses the key (internal callers); it is never a field to change.
        const paths = (req.updateMask?.paths ?? []).filter((p) => p !== "customer_id");
        const unknown = paths.filter((p) => !["name", "metadata", "expires_at", "enabled"].includes(p));
        if (unknown.length) throw invalid(`update_mask may name name, metadata, expires_at, enabled; not ${unknown.join(", ")}`);
        const has = (p: string, set: boolean) => (paths.length ? paths.includes(p) : set);
        const key = await keys.update(
          caller,
          customerId,
          req.id,
          {
            ...(has("name", req.name !== "") && { name: validName(req.name) }),
            ...(has("metadata", Object.keys(req.metadata).length > 0) && { metadata: validMetadata(req.metadata) }),
            ...(has("expires_at", req.expiresAt !== undefined) && { expiresAt: msOf(req.expiresAt) }),
            ...(has("enabled", req.enabled !== undefined) && { enabled: req.enabled ?? true }),
          },
          originOf(ctx),
        );
        return { key: keyMessage(key, now()) };
      }),

    revokeKey: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const key = await keys.revoke(caller, customerFor(caller, req.customerId), req.id, originOf(ctx));
        return { key: keyMessage(key, now()) };
      }),

    listAuditEvents: (req, ctx) =>
      run(ctx, async () => {
        const caller = await credentials.caller(ctx);
        const customerId =
          caller.kind === "internal" && req.customerId === "" ? null : customerFor(caller, req.customerId);
        const page = await keys.listAudit(caller, customerId, {
          pageSize: req.pageSize,
          pageToken: req.pageToken,
          action: req.action || null,
          targetId: req.targetId || null,
          since: msOf(req.since),
          until: msOf(req.until),
        });
        return { data: page.items.map(auditEventMessage), nextPageToken: page.nextPageToken ?? undefined };
      }),

    authenticate: (req, ctx) =>
      run(ctx, async () => {
        credentials.internal(ctx);
        if (req.key === "") throw invalid("key is required");
        const origin = originOf(ctx);
        const result = await authenticator.authenticate(
          req.key.length > MAX_KEY_CHARS ? "" : req.key,
          {
            instanceId: optionalUuid(req.instanceId, "instance_id"),
            requiredScopes: validScopes(req.requiredScopes, "required_scopes"),
            charge: req.charge,
            rateLimitAction: "auth.failed",
          },
          {
            requestId: origin.requestId,
            ip: req.clientIp.slice(0, 64) || origin.ip,
            userAgent: req.userAgent.slice(0, 256) || null,
          },
        );
        const rateLimit = result.rateLimit && {
          limit: result.rateLimit.limit,
          remaining: result.rateLimit.remaining,
          retryAfterSeconds: result.rateLimit.retryAfterSeconds,
        };
        if (!result.valid) return { valid: false, denialReason: DENIAL[result.reason], rateLimit: rateLimit ?? undefined };
        const k = result.key;
        return {
          valid: true,
          principal: {
            keyId: k.id,
            customerId: k.customerId,
            instanceId: k.instanceId ?? "",
            scopes: k.scopes,
            environment: k.environment,
            prefix: k.prefix,
            metadata: k.metadata,
          },
          rateLimit: rateLimit ?? undefined,
        };
      }),

    chargeRateLimit: (req, ctx) =>
      run(ctx, async () => {
        credentials.internal(ctx);
        const customerId = validUuid(req.customerId, "customer_id");
        const d = await rateLimiter.charge(customerId, req.cost === 0 ? 1 : req.cost);
        return {
          allowed: d.allowed,
          limit: d.limit,
          remaining: d.remaining,
          retryAfterSeconds: d.retryAfterSeconds,
          resetAt: timestampFromMs(d.resetAt),
        };
      }),

    setRateLimit: (req, ctx) =>
      run(ctx, async () => {
        const caller = credentials.internal(ctx);
        const customerId = validUuid(req.customerId, "customer_id");
        const policy = await rateLimiter.setPolicy(
          customerId,
          { capacity: req.capacity, refillPerSecond: req.refillPerSecond },
          actorOf(caller),
          originOf(ctx),
        );
        return { customerId, capacity: policy.capacity, refillPerSecond: policy.refillPerSecond };
      }),
  };
}
