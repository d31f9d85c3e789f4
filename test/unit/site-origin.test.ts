import { describe, expect, it } from "vitest";
import { parseTrustedProxies, siteOrigin } from "../../src/service/site-origin.js";

/** The origin the dashboard's Origin check and cookie `Secure` flag rely on (site-origin.ts). */
describe("siteOrigin", () => {
  const headers = (h: Record<string, string>) => (n: string) => h[n] ?? null;
  const forwarded = headers({ host: "10.0.0.5:8080", "x-forwarded-proto": "https", "x-forwarded-host": "keys.example.com" });

  it("believes X-Forwarded-Proto/Host only from a trusted proxy", () => {
    const trusted = { dashboardOrigin: null, trustedProxies: parseTrustedProxies("10.0.0.1, ::1") };
    expect(siteOrigin(trusted, forwarded, "::ffff:10.0.0.1")).toEqual({ origin: "https://keys.example.com", secure: true });
    expect(siteOrigin(trusted, forwarded, "10.0.0.9")).toEqual({ origin: "http://10.0.0.5:8080", secure: false });
    expect(siteOrigin({ dashboardOrigin: null, trustedProxies: new Set() }, forwarded, "10.0.0.1").secure).toBe(false);
  });

  it("DASHBOARD_ORIGIN wins over headers; https there means Secure", () => {
    const cfg = { dashboardOrigin: "https://keys.example.com", trustedProxies: new Set<string>() };
    expect(siteOrigin(cfg, headers({ host: "evil.example" }), "1.2.3.4")).toEqual({ origin: "https://keys.example.com", secure: true });
  });
});
