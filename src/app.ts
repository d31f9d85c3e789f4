import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { Config } from "./config/config.js";
import { createDomain } from "./domain/domain.js";
import { createApiKeyService, serviceDeps } from "./service/api-key-service.js";
import { Credentials } from "./service/credentials.js";
import { instrumentCalls } from "./service/instrument-calls.js";
import { instrumentStore } from "./observability/instrument-store.js";
import { createMetrics, registerGauges } from "./observability/metrics.js";
import { openStore } from "./storage/open-store.js";
import { healthRoutes } from "./transport/connect/health-service.js";
import { reflectionRoutes } from "./transport/connect/reflection-service.js";
import { mapParseErrors } from "./transport/connect/map-parse-errors.js";
import { connectRoutes, nodeContextValues } from "./transport/connect/routes.js";
import { addEnvoyAuthorization } from "./transport/envoy/envoy-authorization.js";
import { createForwardAuthServer } from "./transport/forward-auth/forward-auth-server.js";
import { createGatewayCheck } from "./transport/gateway/gateway-check.js";
import { createGrpcJsServer } from "./transport/grpc/grpc-js-server.js";
import { HealthState } from "./transport/health-state.js";
import { createDualProtocolServer, DEFAULT_LIMITS } from "./transport/http/dual-protocol-server.js";
import { createFallback } from "./transport/http/fallback.js";
import { guardKeyInUrl } from "./transport/http/key-in-url.js";
import { createRestHandler } from "./transport/rest/rest-handler.js";
import { SessionCredential } from "./service/session-credential.js";
import { parseTrustedProxies } from "./service/site-origin.js";
import { buildDashboardBundle } from "./transport/dashboard/bundle.js";
import { createDashboardHandler } from "./transport/dashboard/dashboard-handler.js";

/**
 * Wires the layers: store -> domain -> one service implementation -> transports. Data flows one
 * way; nothing below the service knows about protobuf or HTTP.
 */
export async function createService(config: Config, log: Logger) {
  const metrics = createMetrics();
  const store = instrumentStore(await openStore(config), metrics);
  const domain = createDomain(store, {
    rateLimit: { capacity: config.RATE_LIMIT_CAPACITY, refillPerSecond: config.RATE_LIMIT_REFILL_PER_SEC },
    rateLimitReserveMs: config.RATE_LIMIT_LEASE_MS,
    usageFlushIntervalMs: config.USAGE_FLUSH_INTERVAL_MS,
    auditFlushIntervalMs: config.AUDIT_FLUSH_INTERVAL_MS,
    auditAggregateIntervalMs: config.AUDIT_AGGREGATE_INTERVAL_MS,
    auditFailureIntervalMs: config.AUDIT_FAILURE_INTERVAL_MS,
    maxActiveKeysPerCustomer: config.MAX_ACTIVE_KEYS_PER_CUSTOMER,
    auditRetention: {
      retentionMs: config.AUDIT_FAILURE_RETENTION_DAYS * 86_400_000,
      intervalMs: config.AUDIT_PURGE_INTERVAL_MS,
      batch: config.AUDIT_PURGE_BATCH,
    },
    keyCache: {
      maxKeys: config.KEY_CACHE_SIZE,
      maxBytes: config.KEY_CACHE_MAX_BYTES,
      maxUnknown: config.KEY_CACHE_NEGATIVE_SIZE,
      ttlMs: config.KEY_CACHE_TTL_MS,
      pollIntervalMs: config.REVOCATION_POLL_MS,
    },
    sessions: {
      ttlMs: config.DASHBOARD_SESSION_TTL_MS,
      idleMs: config.DASHBOARD_IDLE_TIMEOUT_MS,
      maxPerSubject: config.DASHBOARD_MAX_SESSIONS_PER_KEY,
      portalTtlMs: config.PORTAL_URL_TTL_MS,
    },
    importPrefixes: config.IMPORT_PREFIXES ?? [],
    idempotency: { leaseMs: config.IDEMPOTENCY_LEASE_MS },
    observe: {
      auth: (outcome) => metrics.authOutcomes.inc(outcome, () => ({ outcome })),
      rateLimit: (allowed) => {
        const result = allowed ? "allowed" : "refused";
        metrics.rateLimitDecisions.inc(result, () => ({ result }));
      },
    },
  }, log);
  registerGauges(metrics, {
    cache: domain.cache,
    usageDepth: () => domain.usage.depth,
    auditPending: () => domain.audit.depth,
  });
  const site = { dashboardOrigin: config.DASHBOARD_ORIGIN ?? null, trustedProxies: parseTrustedProxies(config.TRUSTED_PROXIES) };
  const credentials = new Credentials(
    config.INTERNAL_TOKEN ?? null,
    domain.authenticator,
    new SessionCredential(domain.sessions, domain.rateLimiter, site),
  );
  const service = createApiKeyService(serviceDeps(domain, credentials, site));
  const instrument = instrumentCalls({ log, metrics });
  const impl = instrument.service(service.impl);
  // REST renders ListKeys' JSON straight from the records (transport/rest/key-page-json.ts).
  const listKeyRecords = instrument.call(service.listKeyRecords);
  return { store, domain, impl, listKeyRecords, settled: instrument.settled, metrics, credentials, site };
}

export async function createApp(config: Config, log: Logger) {
  const { store, domain, impl, listKeyRecords, settled, metrics, credentials, site } = await createService(config, log);
  // Built once per process, on the first /dashboard request or a few seconds after start,
  // whichever comes first, so the build (~0.3 s of CPU) never competes with start-up traffic.
  let built: Promise<Awaited<ReturnType<typeof buildDashboardBundle>>> | null = null;
  const bundle = () => {
    if (!built) {
      built = buildDashboardBundle();
      built.catch((err: unknown) => log.error({ err }, "building the dashboard failed"));
    }
    return built;
  };
  const warmUp = setTimeout(() => void bundle().catch(() => {}), DASHBOARD_WARM_UP_MS);
  warmUp.unref();
  const dashboard = createDashboardHandler({ bundle, sessions: domain.sessions, authenticator: domain.authenticator, site, log });
  let draining = false;
  const health = new HealthState();
  const rest = createRestHandler({ impl, listKeyRecords }, { bodyLimitBytes: config.BODY_LIMIT_BYTES, contextValues: nodeContextValues, log });
  const handler = connectNodeAdapter({
    routes: (router) => {
      connectRoutes(impl)(router);
      healthRoutes(health, {
        maxPerClient: config.HEALTH_WATCH_MAX_PER_CLIENT,
        maxTotal: config.HEALTH_WATCH_MAX_TOTAL,
        maxLifetimeMs: config.HEALTH_WATCH_MAX_LIFETIME_MS,
      })(router);
      reflectionRoutes()(router);
      mapParseErrors(router);
    },
    contextValues: nodeContextValues,
    readMaxBytes: config.BODY_LIMIT_BYTES,
    fallback: createFallback({ rest, ready: () => store.ping(), log, isDraining: () => draining, dashboard }),
  });
  const http = createDualProtocolServer(guardKeyInUrl(handler), {
    ...DEFAULT_LIMITS,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    headersTimeoutMs: Math.min(DEFAULT_LIMITS.headersTimeoutMs, config.REQUEST_TIMEOUT_MS),
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
  });
  // Gateways (Envoy Check on GRPC_PORT, forward-auth on AUTHZ_PORT) decide through impl.authenticate.
  const gateway = createGatewayCheck({ impl, credentials, requireInternalToken: config.AUTHZ_REQUIRE_INTERNAL_TOKEN });
  const grpcJs = createGrpcJsServer(impl, {
    maxMessageBytes: config.BODY_LIMIT_BYTES,
    health,
    log,
    addServices: (server) => addEnvoyAuthorization(server, gateway, log),
  });
  const forwardAuth = createForwardAuthServer(gateway, log);

  return {
    impl,
    domain,
    metrics,
    async start(): Promise<{ port: number; grpcPort: number; authzPort: number }> {
      domain.start();
      await listen(http.server, config.HOST, config.PORT);
      const port = (http.server.address() as AddressInfo).port;
      log.info({ host: config.HOST, port }, "serving HTTP/1.1 + HTTP/2 (REST, Connect, gRPC, gRPC-Web)");
      const grpcPort = await grpcJs.listen(config.HOST, config.GRPC_PORT);
      log.info({ host: config.HOST, grpcPort }, "serving native gRPC (grpc-js) and Envoy ext_authz Check");
      const authzPort = await forwardAuth.listen(config.HOST, config.AUTHZ_PORT);
      log.info({ host: config.HOST, authzPort }, "serving forward-auth /check");
      if (!config.AUTHZ_REQUIRE_INTERNAL_TOKEN) {
        log.warn({ grpcPort, authzPort }, "AUTHZ_REQUIRE_INTERNAL_TOKEN=false: Envoy Check and /check answer any caller that reaches these ports");
      }
      return { port, grpcPort, authzPort };
    },
    /**
     * Drains requests (bounded by SHUTDOWN_TIMEOUT_MS): the transports close, then the calls still
     * running finish (one whose client hung up is no longer on any connection), then buffered
     * writes are flushed and the store closes.
     */
    async stop(): Promise<void> {
      draining = true;
      health.setServing(false);
      const deadline = Date.now() + config.SHUTDOWN_TIMEOUT_MS;
      await Promise.all([
        http.close(config.SHUTDOWN_TIMEOUT_MS),
        grpcJs.close(config.SHUTDOWN_TIMEOUT_MS),
        forwardAuth.close(config.SHUTDOWN_TIMEOUT_MS),
      ]);
      await settled(Math.max(0, deadline - Date.now()));
      await domain.flush();
      await store.close();
    },
  };
}

/** When the dashboard's bundle is built if nobody asked for it sooner. */
const DASHBOARD_WARM_UP_MS = 5000;

/** Listens on HOST; "::" (the default) falls back to 0.0.0.0 where IPv6 is unavailable. */
function listen(server: import("node:net").Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (host === "::" && (err.code === "EAFNOSUPPORT" || err.code === "EADDRNOTAVAIL")) {
        server.listen(port, "0.0.0.0", () => resolve());
      } else reject(err);
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
