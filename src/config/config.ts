import { z } from "zod";

/**
 * The service's whole configuration: environment variables, validated once at start (zod) so a
 * typo fails fast with one line naming the variable, instead of misbehaving later.
 */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const positive = z.coerce.number().positive().finite();

const schema = z.object({
  HOST: z.string().min(1).default("::"),
  PORT: int(0, 65535).default(8080),
  GRPC_PORT: int(0, 65535).default(9090),
  /** Forward-auth `/check` for nginx, Caddy, Traefik (transport/forward-auth); keep it private. */
  AUTHZ_PORT: int(0, 65535).default(9091),
  /**
   * Whether Envoy's Check (GRPC_PORT) and forward-auth /check (AUTHZ_PORT) need the internal
   * credential from the gateway. `false` only for ports that nothing but the mesh can reach.
   */
  AUTHZ_REQUIRE_INTERNAL_TOKEN: z
    .enum(["true", "false"], { message: "must be true or false" })
    .default("true")
    .transform((v) => v === "true"),
  METRICS_PORT: int(0, 65535).default(9464),
  DATA_DIR: z.string().min(1).default("./data"),
  MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://").optional(),
  MONGODB_DB: z.string().regex(/^[A-Za-z0-9_-]{1,63}$/, "must be a database name").default("apikeys"),
  INTERNAL_TOKEN: z
    .string()
    .min(16, "must be at least 16 characters")
    .regex(/^\S+$/, "must not contain spaces")
    .refine((t) => !t.startsWith("zpk_"), "must not start with zpk_ (that is how customer keys start)")
    .optional(),
  RATE_LIMIT_CAPACITY: int(1, 1_000_000).default(60),
  RATE_LIMIT_REFILL_PER_SEC: positive.max(1_000_000).default(1),
  /** How long unused reserved rate-limit tokens are kept (docs/rate-limits.md); the name predates the word "reserve". */
  RATE_LIMIT_LEASE_MS: int(0, 10_000).default(250),
  WORKERS: z.union([z.literal("auto"), int(1, 256)]).default("auto"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  BODY_LIMIT_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
  USAGE_FLUSH_INTERVAL_MS: int(10, 60_000).default(1000),
  AUDIT_FLUSH_INTERVAL_MS: int(10, 1000).default(250),
  AUDIT_AGGREGATE_INTERVAL_MS: int(10, 3_600_000).default(10_000),
  AUDIT_FAILURE_INTERVAL_MS: int(10, 1000).default(500),
  AUDIT_FAILURE_RETENTION_DAYS: z.coerce.number().min(0).max(36_500).default(30),
  AUDIT_PURGE_INTERVAL_MS: int(100, 86_400_000).default(60_000),
  AUDIT_PURGE_BATCH: int(1, 1_000_000).default(10_000),
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),
  KEY_CACHE_SIZE: int(1, 10_000_000).default(50_000),
  KEY_CACHE_MAX_BYTES: int(1 << 20, 64 * 2 ** 30).default(64 * 2 ** 20),
  MAX_ACTIVE_KEYS_PER_CUSTOMER: int(1, 10_000_000).default(1000),
  KEY_CACHE_NEGATIVE_SIZE: int(1, 10_000_000).default(100_000),
  KEY_CACHE_TTL_MS: int(1, 86_400_000).default(60_000),
  REVOCATION_POLL_MS: int(10, 60_000).default(500),
  /**
   * Comma-separated prefixes of imported keys that lack our checksum (ImportKeys), e.g.
   * `sk_live_,acme_`: only strings starting with one of them skip the offline format check.
   */
  IMPORT_PREFIXES: z
    .string()
    .regex(/^[A-Za-z0-9_-]{2,32}(,[A-Za-z0-9_-]{2,32})*$/, "must be comma-separated prefixes of 2-32 characters of A-Z a-z 0-9 _ -")
    .refine((v) => !v.split(",").some((p) => "zpk_".startsWith(p) || p.startsWith("zpk_")), "must not overlap zpk_ (our own keys)")
    .transform((v) => v.split(","))
    .optional(),
  /** How long a call may hold an idempotency record before another may take over (kill -9). */
  IDEMPOTENCY_LEASE_MS: int(100, 600_000).default(30_000),
  /** Time for a whole request (headers and body) to arrive, on HTTP/1.1 and on each HTTP/2 stream. */
  REQUEST_TIMEOUT_MS: int(1000, 600_000).default(30_000),
  HEALTH_WATCH_MAX_PER_CLIENT: int(0, 100_000).default(4),
  HEALTH_WATCH_MAX_TOTAL: int(0, 1_000_000).default(1000),
  HEALTH_WATCH_MAX_LIFETIME_MS: int(1000, 86_400_000).default(300_000),
  // Dashboard (src/transport/dashboard): the public origin (scheme://host[:port]) the dashboard is
  // served at, when a proxy in front rewrites Host; proxies (exact IPs) whose X-Forwarded-Proto and
  // X-Forwarded-Host are believed; session lifetime, idle timeout, sessions per key, portal URL validity.
  DASHBOARD_ORIGIN: z.string().regex(/^https?:\/\/[^/?#\s]+$/, "must be scheme://host[:port], without a path").optional(),
  TRUSTED_PROXIES: z.string().regex(/^[0-9A-Fa-f.:, ]*$/, "must be a comma-separated list of IP addresses").default(""),
  DASHBOARD_SESSION_TTL_MS: int(60_000, 30 * 86_400_000).default(12 * 3_600_000),
  DASHBOARD_IDLE_TIMEOUT_MS: int(10_000, 30 * 86_400_000).default(30 * 60_000),
  DASHBOARD_MAX_SESSIONS_PER_KEY: int(1, 1000).default(10),
  PORTAL_URL_TTL_MS: int(1000, 3_600_000).default(5 * 60_000),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {}

/** Parses the environment; empty strings count as unset. Throws ConfigError with one line. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Object.fromEntries(
    Object.keys(schema.shape).flatMap((k) => (env[k] !== undefined && env[k] !== "" ? [[k, env[k]]] : [])),
  );
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = String(issue.path[0]);
  const shown = name === "INTERNAL_TOKEN" || name === "MONGODB_URI" ? "(value hidden)" : JSON.stringify(env[name]);
  throw new ConfigError(`invalid configuration: ${name} ${issue.message} (got ${shown})`);
}
