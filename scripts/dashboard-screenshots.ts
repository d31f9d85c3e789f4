/**
 * `npm run dashboard:screenshots [-- <folder>]`: starts a server on a fresh data dir, seeds a demo
 * customer (keys in every status, an audit trail with failures, a week of hourly usage), and
 * writes a PNG of each dashboard page (sign-in, keys, issue dialog, secret dialog, Activity,
 * usage) into the folder (default data/dashboard-screenshots), so a reviewer can look without a
 * browser. Also prints the bundle's gzipped size and the time to interactive it measured.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { SqliteStore } from "../src/storage/sqlite/sqlite-store.js";
import { launchChromium } from "../test/helpers/browser.js";
import { issueAsInternal, rest } from "../test/helpers/rest.js";
import { startServer, sleep } from "../test/helpers/server.js";

const out = resolve(process.argv[2] ?? "data/dashboard-screenshots");
mkdirSync(out, { recursive: true });
const CUSTOMER = "6f1c2d3e-0000-4000-8000-000000000001";
const INSTANCE = "0b9a7c1e-5d2f-4e3a-9b8c-7d6e5f4a3b2c";
const HOUR = 3_600_000;

const server = await startServer({ LOG_LEVEL: "info" });
const tb = await launchChromium();
try {
  const rpc = (method: string, body: unknown) =>
    fetch(`${server.url}/apikeys.v1.ApiKeyService/${method}`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.internalToken}`, "content-type": "application/json", "x-caller": "demo-seed" },
      body: JSON.stringify(body),
    });
  const admin = await issueAsInternal(server, CUSTOMER, { name: "Admin (dashboard demo)", metadata: { team: "platform" } });
  const prod = await issueAsInternal(server, CUSTOMER, { name: "checkout-service prod", scopes: ["orders:read", "orders:write"], metadata: { service: "checkout", env: "prod" } });
  const ci = await issueAsInternal(server, CUSTOMER, { name: "CI deploys", environment: "test", expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString() });
  await issueAsInternal(server, CUSTOMER, { name: "eu-west instance", instance_id: INSTANCE, scopes: ["orders:read"] });
  await issueAsInternal(server, CUSTOMER, { name: "read-only analytics", scopes: ["api_keys:read", "audit:read"] });
  const old = await issueAsInternal(server, CUSTOMER, { name: "legacy partner key" });
  await rest(server, "PATCH", `/v1/api-keys/${prod.id}`, { key: admin.secret, body: { metadata: { service: "checkout", env: "prod", owner: "payments" } } });
  await rest(server, "DELETE", `/v1/api-keys/${old.id}`, { key: admin.secret });
  for (let i = 0; i < 40; i++) await rpc("Authenticate", { key: prod.secret, client_ip: "203.0.113.7", user_agent: "checkout/2.3" });
  for (let i = 0; i < 6; i++) await rpc("Authenticate", { key: old.secret, client_ip: "198.51.100.23", user_agent: "partner-sdk/0.9" });
  for (let i = 0; i < 4; i++) await rpc("Authenticate", { key: ci.secret, required_scopes: ["admin"], client_ip: "192.0.2.10" });

  // A week of history for the chart, written through the Store port like the usage batches are.
  const store = new SqliteStore(server.dataDir);
  const now = Date.now();
  const thisHour = now - (now % HOUR);
  const deltas = [];
  for (let h = 167; h >= 1; h--) {
    const hour = thisHour - h * HOUR;
    const daily = 0.5 + 0.5 * Math.sin(((hour / HOUR) % 24) / 24 * 2 * Math.PI);
    deltas.push({ customerId: CUSTOMER, keyId: prod.id, instanceId: null, hour, outcome: "valid", count: Math.round(20 + 60 * daily + 10 * Math.random()) });
    if (h % 7 === 0) deltas.push({ customerId: CUSTOMER, keyId: prod.id, instanceId: null, hour, outcome: "rate_limited", count: Math.round(5 * Math.random()) + 1 });
    if (h < 60 && h % 3 === 0) deltas.push({ customerId: CUSTOMER, keyId: old.id, instanceId: null, hour, outcome: "revoked", count: Math.round(4 * Math.random()) + 1 });
    if (h % 11 === 0) deltas.push({ customerId: CUSTOMER, keyId: ci.id, instanceId: null, hour, outcome: "missing_scope", count: 2 });
  }
  await store.recordHourlyUsage(deltas);
  await store.close();
  await sleep(500); // written-behind usage and audit events land

  const ctx = await tb.browser.newContext({ baseURL: server.url, viewport: { width: 1360, height: 860 } });
  const page = await ctx.newPage();
  await page.goto("/dashboard/");
  await page.getByLabel("API key").waitFor();
  await page.screenshot({ path: `${out}/0-sign-in.png` });
  await page.getByLabel("API key").fill(admin.secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("tr[data-key-id]").first().waitFor();
  await page.getByLabel("Include revoked and expired keys").check();
  await page.locator(`tr[data-key-id="${old.id}"]`).waitFor();
  await page.screenshot({ path: `${out}/1-keys.png`, fullPage: true });
  await page.getByRole("button", { name: "Issue a key" }).click();
  await page.getByLabel("Name").fill("mobile app");
  await page.getByLabel("Scopes").fill("orders:read");
  await page.getByLabel("Metadata").fill("platform=ios");
  await page.screenshot({ path: `${out}/2-issue-dialog.png` });
  await page.getByRole("button", { name: "Issue key" }).click();
  await page.locator("#secret").waitFor();
  await page.screenshot({ path: `${out}/3-secret-once.png` });
  await page.getByRole("button", { name: /close/ }).click();
  await page.getByRole("link", { name: "Activity", exact: true }).click();
  await page.locator("tr[data-action]").first().waitFor();
  await page.screenshot({ path: `${out}/4-activity.png`, fullPage: true });
  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await page.locator("#usage-chart canvas").waitFor();
  await page.screenshot({ path: `${out}/5-usage.png`, fullPage: true });

  // Time to interactive on the seeded customer: a fresh page load, signed in, until the keys
  // table is rendered and its buttons respond (measured in the page from navigation start).
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const p = await ctx.newPage();
    await p.goto("/dashboard/");
    await p.locator("tr[data-key-id] button").first().waitFor();
    samples.push(await p.evaluate(() => performance.now()));
    await p.close();
  }
  samples.sort((a, b) => a - b);
  const js = await (await fetch(`${server.url}/dashboard/app.js`)).arrayBuffer();
  const css = await (await fetch(`${server.url}/dashboard/app.css`)).arrayBuffer();
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`screenshots written to ${out}`);
  console.log(`bundle: app.js ${kb(js.byteLength)} (${kb(gzipSync(Buffer.from(js), { level: 9 }).length)} gzipped), app.css ${kb(css.byteLength)} (${kb(gzipSync(Buffer.from(css), { level: 9 }).length)} gzipped)`);
  console.log(`time to interactive (signed in, keys table usable), median of 5: ${samples[2]!.toFixed(0)} ms (min ${samples[0]!.toFixed(0)}, max ${samples[4]!.toFixed(0)})`);
  await ctx.close();
} finally {
  await tb.close();
  await server.stop();
}
