/**
 * Which origin a browser request was made to, and whether it came over HTTPS, for the dashboard's
 * cross-site checks and the cookie's `Secure` flag. `X-Forwarded-Proto` / `X-Forwarded-Host` are
 * believed only from the proxies listed in TRUSTED_PROXIES (exact peer IPs): anyone else could
 * send them. DASHBOARD_ORIGIN, when set, is the origin, whatever the headers say.
 */
export interface SiteOriginConfig {
  dashboardOrigin: string | null;
  trustedProxies: ReadonlySet<string>;
}

export function parseTrustedProxies(list: string): Set<string> {
  return new Set(list.split(",").map((s) => normalizeIp(s.trim())).filter((s) => s !== ""));
}

export const normalizeIp = (ip: string) => (ip.startsWith("::ffff:") ? ip.slice(7) : ip);

export interface SiteOrigin {
  /** `scheme://host[:port]` as the browser sees it. */
  origin: string;
  secure: boolean;
}

export function siteOrigin(cfg: SiteOriginConfig, header: (name: string) => string | null, peer: string | null): SiteOrigin {
  const trusted = peer !== null && cfg.trustedProxies.has(normalizeIp(peer));
  const first = (v: string | null) => v?.split(",")[0]?.trim() || null;
  const proto = trusted ? first(header("x-forwarded-proto"))?.toLowerCase() : null;
  if (cfg.dashboardOrigin !== null) {
    return { origin: cfg.dashboardOrigin, secure: cfg.dashboardOrigin.startsWith("https:") || proto === "https" };
  }
  const host = (trusted ? first(header("x-forwarded-host")) : null) ?? header("host") ?? header(":authority") ?? "localhost";
  const secure = proto === "https";
  return { origin: `${secure ? "https" : "http"}://${host.toLowerCase()}`, secure };
}
