import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { create, type DescMessage, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ApiKeyService,
  BatchIssueKeysRequestSchema,
  BatchIssueKeysResponseSchema,
  DenialReason,
  type IssueKeyRequest,
  IssueKeyRequestSchema,
  IssueKeyResponseSchema,
  type ListKeysRequest,
  type PrincipalSchema,
  RollKeyRequestSchema,
  RollKeyResponseSchema,
} from "../../gen/apikeys/v1/api_key_service_pb.js";
import { actorOf } from "../domain/access.js";
import type { Authenticator } from "../domain/authenticator.js";
import type { Domain } from "../domain/domain.js";
import type { Idempotency } from "../domain/idempotency.js";
import type { KeyImporter } from "../domain/import-keys.js";
import type { IssueRequest, KeyListPage, KeyManager, Prepared } from "../domain/key-manager.js";
import type { KeyRoller } from "../domain/roll.js";
import type { RateLimiter } from "../domain/rate-limit/rate-limiter.js";
import type { Caller, KeyRecord, RateLimitDecision } from "../domain/types.js";
import { originOf } from "./call-context.js";
import type { Sessions } from "../domain/sessions.js";
import type { UsageReports } from "../domain/usage-reports.js";
import { kPeerAddress } from "./call-context.js";
import { type SiteOriginConfig, siteOrigin } from "./site-origin.js";
import type { Credentials } from "./credentials.js";
import { canonicalParams, idempotencyKeyOf, idempotencyScope } from "./idempotent-call.js";
import { auditEventMessage, keyMessage, msOf } from "./messages.js";

export interface ServiceDeps {
  credentials: Credentials;
  keys: KeyManager;
  roller: KeyRoller;
  importer: KeyImporter;
  idempotency: Idempotency;
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  now: () => number;
  /** Dashboard sessions and usage reports (issue "The dashboard"). */
  sessions: Sessions;
  usageReports: UsageReports;
  /** Where the dashboard is served (portal URLs are built on it). */
  site: SiteOriginConfig;
}

/** The service's dependencies taken from the domain (app.ts and the unit tests wire it alike). */
export function serviceDeps(domain: Domain, credentials: Credentials, site: SiteOriginConfig): ServiceDeps {
  const { keys, roller, importer, idempotency, authenticator, rateLimiter, now, sessions, usageReports } = domain;
  return { credentials, keys, roller, importer, idempotency, authenticator, rateLimiter, now, sessions, usageReports, site };
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

/** IssueKeyRequest -> the domain's issue request (IssueKey and each BatchIssueKeys entry). */
const issueRequest = (req: IssueKeyRequest): IssueRequest => ({
  name: req.name,
  instanceId: req.instanceId,
  scopes: req.scopes,
  expiresAt: msOf(req.expiresAt),
  environment: req.environment,
  metadata: req.metadata,
});

/**
 * The one implementation of ApiKeyService, served by every transport. Each RPC reads like the
 * proto: who calls (credentials.ts), the request's fields as domain input, one domain call (which
 * validates the input and applies every rule), the result as the response message. Request ids,
 * errors, logs and metrics are added around every call by instrument-calls.ts.
 *
 * Beside it, `listKeyRecords`: ListKeys answering its domain records, for REST, which renders the
 * page's JSON straight from them (transport/rest/key-page-json.ts) without a message per key.
 */
export function createApiKeyService(deps: ServiceDeps): ApiKeyServiceParts {
  const { credentials, keys, roller, importer, idempotency, authenticator, rateLimiter, now } = deps;

  /**
   * A write RPC made safe to retry with `idempotency-key` (domain/idempotency.ts): the prepared
   * answer is encoded as the response message, which is what a retry gets back.
   */
  async function idempotent<I extends DescMessage, O extends DescMessage, T>(
    ctx: HandlerContext, caller: Caller, customerId: string, rpc: string, input: I, req: MessageShape<I>, output: O,
    prepare: () => Prepared<T> | Promise<Prepared<T>>, message: (result: T) => MessageInitShape<O>,
  ): Promise<MessageShape<O>> {
    const bytes = await idempotency.run(idempotencyScope(caller), customerId, idempotencyKeyOf(ctx), canonicalParams(rpc, input, req), async () => {
      const p = await prepare();
      return { ...p, result: toBinary(output, create(output, message(p.result))) };
    });
    return fromBinary(output, bytes);
  }
  /** The customer an idempotency record is kept for (recovery looks its keys up there). */
  const customerOf = (caller: Caller, requested: string) => (caller.kind === "key" ? caller.key.customerId : requested.toLowerCase());
  const issued = (x: { key: KeyRecord; secret: string }) => ({ key: keyMessage(x.key, now()), secret: x.secret });
  const { sessions, usageReports, site } = deps;

  /** ListKeys up to the records: the RPCs make messages of them, REST its JSON (key-page-json.ts). */
  async function listKeyRecords(req: ListKeysRequest, ctx: HandlerContext): Promise<KeyListPage> {
    const caller = await credentials.caller(ctx);
    return keys.list(caller, req.customerId, {
      pageSize: req.pageSize,
      pageToken: req.pageToken,
      includeInactive: req.includeInactive,
      instanceId: req.instanceId,
      metadata: req.metadata,
    });
  }

  const impl: ServiceImpl<typeof ApiKeyService> = {
    async listKeys(req, ctx) {
      const page = await listKeyRecords(req, ctx);
      return { data: page.items.map((k) => keyMessage(k, page.now)), nextPageToken: page.nextPageToken ?? undefined, totalSize: page.totalSize };
    },

    async getKey(req, ctx) {
      const caller = await credentials.caller(ctx);
      const key = await keys.get(caller, req.customerId, req.id);
      return { key: keyMessage(key, now()) };
    },

    async issueKey(req, ctx) {
      const caller = await credentials.caller(ctx);
      return idempotent(ctx, caller, customerOf(caller, req.customerId), "IssueKey", IssueKeyRequestSchema, req, IssueKeyResponseSchema,
        () => keys.prepareIssue(caller, req.customerId, issueRequest(req), originOf(ctx)), issued);
    },

    async batchIssueKeys(req, ctx) {
      const caller = await credentials.caller(ctx);
      const entries = req.keys.map((k) => ({ ...issueRequest(k), customerId: k.customerId }));
      return idempotent(ctx, caller, customerOf(caller, req.customerId), "BatchIssueKeys", BatchIssueKeysRequestSchema, req, BatchIssueKeysResponseSchema,
        () => keys.prepareBatchIssue(caller, req.customerId, entries, originOf(ctx)), (all) => ({ data: all.map(issued) }));
    },

    async rollKey(req, ctx) {
      const caller = await credentials.caller(ctx);
      const input = { graceSeconds: req.graceSeconds ?? null, graceStarts: req.graceStarts, expiresAt: msOf(req.expiresAt) };
      return idempotent(ctx, caller, customerOf(caller, req.customerId), "RollKey", RollKeyRequestSchema, req, RollKeyResponseSchema,
        () => roller.prepareRoll(caller, req.customerId, req.id, input, originOf(ctx)), issued);
    },

    async importKeys(req, ctx) {
      const caller = credentials.internal(ctx);
      const imported = await importer.import(caller, req.customerId, req.keys.map((k) => ({
        name: k.name,
        instanceId: k.instanceId,
        scopes: k.scopes,
        expiresAt: msOf(k.expiresAt),
        environment: k.environment,
        metadata: k.metadata,
        sha256: k.sha256,
        plaintext: k.plaintext,
        prefix: k.prefix,
      })), originOf(ctx));
      const at = now();
      return { keys: imported.map((k) => keyMessage(k, at)) };
    },

    async updateKey(req, ctx) {
      const caller = await credentials.caller(ctx);
      // The update mask names the fields to change; without one, the fields that are set.
      // customer_id addresses the key (internal callers); it is never a field to change.
      const mask = (req.updateMask?.paths ?? []).filter((p) => p !== "customer_id");
      const fields = mask.length
        ? mask
        : [
            ...(req.name !== "" ? ["name"] : []),
            ...(Object.keys(req.metadata).length > 0 ? ["metadata"] : []),
            ...(req.expiresAt !== undefined ? ["expires_at"] : []),
            ...(req.enabled !== undefined ? ["enabled"] : []),
          ];
      const key = await keys.update(
        caller,
        req.customerId,
        req.id,
        { fields, name: req.name, metadata: req.metadata, expiresAt: msOf(req.expiresAt), enabled: req.enabled },
        originOf(ctx),
      );
      return { key: keyMessage(key, now()) };
    },

    async revokeKey(req, ctx) {
      const caller = await credentials.caller(ctx);
      const key = await keys.revoke(caller, req.customerId, req.id, originOf(ctx));
      return { key: keyMessage(key, now()) };
    },

    async listAuditEvents(req, ctx) {
      const caller = await credentials.caller(ctx);
      const page = await keys.listAudit(caller, req.customerId, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        action: req.action,
        targetId: req.targetId,
        since: msOf(req.since),
        until: msOf(req.until),
      });
      return { data: page.items.map(auditEventMessage), nextPageToken: page.nextPageToken ?? undefined };
    },

    async authenticate(req, ctx) {
      credentials.internal(ctx);
      const result = await authenticator.verify(
        { key: req.key, instanceId: req.instanceId, requiredScopes: req.requiredScopes, charge: req.charge },
        // The gateway reports its own client's address and user agent for the audit trail.
        () => {
          const origin = originOf(ctx);
          return { requestId: origin.requestId, ip: req.clientIp.slice(0, 64) || origin.ip, userAgent: req.userAgent.slice(0, 256) || null };
        },
      );
      const rateLimit = result.rateLimit ? rateLimitStatus(result.rateLimit) : undefined;
      if (!result.valid) return { valid: false, denialReason: DENIAL[result.reason], rateLimit };
      return { valid: true, principal: principalOf(result.key), rateLimit };
    },

    async chargeRateLimit(req, ctx) {
      credentials.internal(ctx);
      const d = await rateLimiter.chargeCustomer(req.customerId, req.cost);
      return { ...rateLimitStatus(d), allowed: d.allowed, resetAt: timestampFromMs(d.resetAt) };
    },

    async getUsage(req, ctx) {
      const caller = await credentials.caller(ctx);
      const report = await usageReports.report(caller, req.customerId, {
        keyId: req.keyId,
        since: msOf(req.since),
        until: msOf(req.until),
      });
      return {
        since: timestampFromMs(report.since),
        until: timestampFromMs(report.until),
        bucketSeconds: 3600,
        buckets: report.hours.map((h) => ({
          start: timestampFromMs(h.start),
          valid: BigInt(h.valid),
          denied: Object.entries(h.denied).map(([reason, count]) => ({ reason: DENIAL[reason] ?? DenialReason.UNSPECIFIED, count: BigInt(count) })),
        })),
      };
    },

    async createPortalSession(req, ctx) {
      const caller = credentials.internal(ctx);
      const { token, record } = await sessions.createGrant({
        customerId: req.customerId,
        scopes: req.scopes,
        instanceId: req.instanceId,
        returnUrl: req.returnUrl,
        createdBy: caller.kind === "internal" ? caller.name : "internal",
      });
      const path = `/dashboard/portal/${token}`;
      const origin = siteOrigin(site, (n) => ctx.requestHeader.get(n), ctx.values.get(kPeerAddress)).origin;
      return { url: origin + path, path, expiresAt: timestampFromMs(record.expiresAt) };
    },

    async setRateLimit(req, ctx) {
      const caller = credentials.internal(ctx);
      const { customerId, policy } = await rateLimiter.setPolicy(
        req.customerId,
        { capacity: req.capacity, refillPerSecond: req.refillPerSecond },
        actorOf(caller),
        originOf(ctx),
      );
      return { customerId, capacity: policy.capacity, refillPerSecond: policy.refillPerSecond };
    },
  };
  return { impl, listKeyRecords };
}

/** What createApiKeyService makes: the service, and ListKeys up to its records. */
export interface ApiKeyServiceParts {
  impl: ServiceImpl<typeof ApiKeyService>;
  listKeyRecords: (req: ListKeysRequest, ctx: HandlerContext) => Promise<KeyListPage>;
}

type PrincipalInit = MessageInitShape<typeof PrincipalSchema>;
const principals = new WeakMap<KeyRecord, PrincipalInit>();

/**
 * The principal of a key record, made once per record and never changed: the key cache hands out
 * one record per key version, so a gateway's Authenticate calls share it, and the gRPC adapter
 * encodes it once per version (transport/grpc/authenticate-response-encoder.ts).
 */
function principalOf(k: KeyRecord): PrincipalInit {
  let p = principals.get(k);
  if (!p) {
    p = Object.freeze({
      keyId: k.id,
      customerId: k.customerId,
      instanceId: k.instanceId ?? "",
      scopes: k.scopes,
      environment: k.environment,
      prefix: k.prefix,
      metadata: k.metadata,
    });
    principals.set(k, p);
  }
  return p;
}

const rateLimitStatus = (d: RateLimitDecision) => ({
  limit: d.limit,
  remaining: d.remaining,
  retryAfterSeconds: d.retryAfterSeconds,
});
