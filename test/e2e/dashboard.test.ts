import { readFileSync } from "node:fs";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService, KeySchema } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { launchChromium, type TestBrowser } from "../helpers/browser.js";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { REPO, type RunningServer, sleep, startServer } from "../helpers/server.js";

/**
 * The dashboard (issue 14) in a real browser: headless Debian chromium driven by playwright-core
 * against a real server process. Each case signs in through the page like a user would.
 */
const AXE = readFileSync(`${REPO}node_modules/axe-core/axe.min.js`, "utf8");
const PORTAL_TTL_MS = 4000;
const XSS_NAME = `<img src=x onerror="window.__xss=1">`;
const XSS_UA = `<script>window.__xss=2</script><img src=x onerror="window.__xss=3">`;

let server: RunningServer;
let tb: TestBrowser;
const customer = uuid();
let admin: { id: string; secret: string; prefix: string };

/** Connect JSON call as an internal service. */
async function internalRpc(method: string, body: unknown) {
  const res = await fetch(`${server.url}/apikeys.v1.ApiKeyService/${method}`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.internalToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function newContext(): Promise<BrowserContext> {
  const ctx = await tb.browser.newContext({ baseURL: server.url });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  return ctx;
}

async function signIn(ctx: BrowserContext, secret: string): Promise<Page> {
  const page = await ctx.newPage();
  page.on("dialog", (d) => {
    throw new Error(`unexpected JS dialog: ${d.message()}`);
  });
  await page.goto("/dashboard");
  await page.getByLabel("API key").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "API keys", exact: true }).waitFor();
  return page;
}

async function sessionCookie(ctx: BrowserContext) {
  return (await ctx.cookies()).find((c) => c.name === "zpk_session");
}

/** Connect call from Node with a session cookie, as a forger would send it. */
function withCookie(token: string, method: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${server.url}/apikeys.v1.ApiKeyService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", origin: server.url, cookie: `zpk_session=${token}`, ...headers },
    body: JSON.stringify(body),
  });
}

async function axeSerious(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await (window as any).axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v: any) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  return (result as { id: string; impact: string; nodes: number }[])
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}, ${v.nodes} nodes)`);
}

beforeAll(async () => {
  server = await startServer({ PORTAL_URL_TTL_MS: String(PORTAL_TTL_MS), TRUSTED_PROXIES: "127.0.0.1" });
  tb = await launchChromium();
  admin = await issueAsInternal(server, customer, { name: "admin key" });
});

afterAll(async () => {
  await tb?.close();
  await server?.stop();
});

describe("dashboard in a browser", { timeout: 90_000 }, () => {
  it("signs in with a key: HttpOnly SameSite=Strict cookie (not Secure over plain HTTP), the key kept nowhere in the browser", async () => {
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    await expect(page.locator(`tr[data-key-id="${admin.id}"]`)).toBeTruthy();
    await page.locator(`tr[data-key-id="${admin.id}"]`).waitFor();
    const cookie = await sessionCookie(ctx);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", secure: false, path: "/" });
    expect(cookie!.expires).toBeGreaterThan(Date.now() / 1000);
    expect(cookie!.value).not.toContain(admin.secret);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    expect(stored).not.toContain("zpk_live_");
    expect(await page.content()).not.toContain(admin.secret);
    // Behind a trusted proxy that says HTTPS the cookie is Secure (checked over HTTP here).
    await ctx.close();
  });

  it("issues a key: the secret is shown once, copied to the clipboard, and gone from the DOM after closing", async () => {
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    await page.getByRole("button", { name: "Issue a key" }).click();
    await page.getByLabel("Name").fill("ci deploy");
    await page.getByLabel("Metadata").fill("team=payments");
    await page.getByRole("button", { name: "Issue key" }).click();
    const secretEl = page.locator("#secret");
    await secretEl.waitFor();
    const secret = (await secretEl.textContent())!;
    expect(secret).toMatch(/^zpk_live_/);
    await expect(page.getByText("You will not see this again").isVisible()).resolves.toBe(true);
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByText("Copied to the clipboard.").waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await page.getByRole("button", { name: /close/ }).click();
    await page.locator("#secret-dialog").waitFor({ state: "detached" });
    expect(await page.content()).not.toContain(secret);
    expect(await page.evaluate((s) => document.documentElement.outerHTML.includes(s) || document.body.innerText.includes(s), secret)).toBe(false);
    // The new key is listed and works.
    await page.getByRole("cell", { name: /ci deploy/ }).waitFor();
    expect((await rest(server, "GET", "/v1/api-keys", { key: secret })).status).toBe(200);
    await ctx.close();
  });

  it("edits a key's name and metadata, and revokes a key after a confirmation naming its prefix; the revoked key fails authentication", async () => {
    const target = await issueAsInternal(server, customer, { name: "to edit" });
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    const row = page.locator(`tr[data-key-id="${target.id}"]`);
    await row.getByRole("button", { name: `Edit ${target.prefix}` }).click();
    await page.getByLabel("Name").fill("edited name");
    await page.getByLabel("Metadata").fill("env=prod\nowner=ops");
    await page.getByRole("button", { name: "Save" }).click();
    await row.getByRole("cell", { name: /edited name/ }).waitFor();
    const got = await rest(server, "GET", `/v1/api-keys/${target.id}`, { key: admin.secret });
    expect(got.body).toMatchObject({ name: "edited name", metadata: { env: "prod", owner: "ops" } });

    await row.getByRole("button", { name: `Revoke ${target.prefix}` }).click();
    const dialog = page.locator("#revoke-dialog");
    await expect(dialog.textContent()).resolves.toContain(target.prefix);
    await page.getByRole("button", { name: `Revoke ${target.prefix}` }).last().click();
    await row.waitFor({ state: "detached" }); // active keys only, by default
    const denied = await rest(server, "GET", "/v1/api-keys", { key: target.secret });
    expect(denied.status).toBe(401);
    expect(denied.body.error.code).toBe("key_revoked");
    await page.getByLabel("Include revoked and expired keys").check();
    await row.getByText("revoked").waitFor();
    await ctx.close();
  });

  // The key lifecycle RPCs (issue 13): their buttons appear once the generated client has them.
  const hasRoll = "rollKey" in (ApiKeyService.method as object);
  const hasDisable = KeySchema.fields.some((f) => f.name === "enabled");

  it.runIf(hasRoll)("rolls a key: the new secret is shown once and works, the old one keeps working during the grace period", async () => {
    const k = await issueAsInternal(server, customer, { name: "to roll" });
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    await page.locator(`tr[data-key-id="${k.id}"]`).getByRole("button", { name: `Roll ${k.prefix}` }).click();
    await page.getByLabel("Old key keeps working for").selectOption("3600");
    await page.locator("#roll-dialog").getByRole("button", { name: `Roll ${k.prefix}` }).click();
    const secret = (await page.locator("#secret").textContent())!;
    await page.getByRole("button", { name: /close/ }).click();
    await page.locator("#secret-dialog").waitFor({ state: "detached" });
    expect(await page.content()).not.toContain(secret);
    expect((await rest(server, "GET", "/v1/api-keys", { key: secret })).status).toBe(200);
    expect((await rest(server, "GET", "/v1/api-keys", { key: k.secret })).status).toBe(200);
    await ctx.close();
  });

  it.runIf(hasDisable)("disables a key (it fails authentication, its sessions end, its status says disabled) and enables it again", async () => {
    const k = await issueAsInternal(server, customer, { name: "to disable" });
    const own = await newContext(); // a session of the key being disabled
    await signIn(own, k.secret);
    const ownToken = (await sessionCookie(own))!.value;
    expect((await withCookie(ownToken, "ListKeys", {})).status).toBe(200);
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    const row = page.locator(`tr[data-key-id="${k.id}"]`);
    await row.getByRole("button", { name: `Disable ${k.prefix}` }).click();
    await row.getByText("disabled").waitFor();
    expect((await rest(server, "GET", "/v1/api-keys", { key: k.secret })).status).toBe(401);
    expect((await withCookie(ownToken, "ListKeys", {})).status).toBe(401); // its sessions ended
    await own.close();
    await row.getByRole("button", { name: `Enable ${k.prefix}` }).click();
    await row.getByText("active").waitFor();
    expect((await rest(server, "GET", "/v1/api-keys", { key: k.secret })).status).toBe(200);
    await ctx.close();
  });

  it("Activity lists issue, update, revoke and auth.failed (with reason) events, newest first, with action and key filters", async () => {
    const k = await issueAsInternal(server, customer, { name: "activity key" });
    await rest(server, "PATCH", `/v1/api-keys/${k.id}`, { key: admin.secret, body: { name: "activity key 2" } });
    await rest(server, "DELETE", `/v1/api-keys/${k.id}`, { key: admin.secret });
    await internalRpc("Authenticate", { key: k.secret, user_agent: XSS_UA });
    await sleep(400); // the failure event is written behind (AUDIT_FLUSH_INTERVAL_MS=50)
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    await page.getByRole("link", { name: "Activity", exact: true }).click();
    await page.getByRole("heading", { name: "Activity" }).waitFor();
    await page.locator("tr[data-action]").first().waitFor();
    const actions = await page.locator("tr[data-action]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
    expect(actions[0]).toBe("auth.failed"); // newest first
    expect(actions).toEqual(expect.arrayContaining(["api_key.issued", "api_key.updated", "api_key.revoked", "auth.failed"]));
    const failed = page.locator('tr[data-action="auth.failed"]').first();
    await expect(failed.locator("td.reason").textContent()).resolves.toBe("revoked");
    await expect(failed.locator("td.ua").textContent()).resolves.toBe(XSS_UA); // shown as text

    await page.getByLabel("Action").selectOption("api_key.revoked");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForFunction(() => [...document.querySelectorAll("tr[data-action]")].every((r) => r.getAttribute("data-action") === "api_key.revoked"));
    await page.getByLabel("Action").selectOption("");
    await page.getByLabel("Key").selectOption(k.id);
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForFunction(
      (prefix) => {
        const rows = [...document.querySelectorAll("tr[data-action]")];
        return rows.length === 4 && rows.every((r) => r.textContent!.includes(prefix));
      },
      k.prefix,
    );
    expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
    await ctx.close();
  });

  it("pages through keys and filters Activity by time range", async () => {
    const c = uuid();
    const owner = await issueAsInternal(server, c, { name: "owner" });
    for (let i = 0; i < 21; i++) await issueAsInternal(server, c, { name: `bulk ${String(i).padStart(2, "0")}` });
    const ctx = await newContext();
    const page = await signIn(ctx, owner.secret);
    await page.getByRole("cell", { name: /bulk 20/ }).waitFor(); // newest first
    expect(await page.locator("tr[data-key-id]").count()).toBe(20);
    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByText("Page 2").waitFor();
    const second = await page.locator("td.name").evaluateAll((tds) => tds.map((td) => td.firstChild!.textContent));
    expect(second).toEqual(["bulk 00", "owner"]);
    await page.getByRole("button", { name: "Previous page" }).click();
    await page.getByRole("cell", { name: /bulk 20/ }).waitFor();

    await page.getByRole("link", { name: "Activity", exact: true }).click();
    await page.locator("tr[data-action]").first().waitFor();
    await page.getByLabel("From").fill("2099-01-01T00:00");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByText("No events match.").waitFor();
    await page.getByLabel("From").fill("2020-01-01T00:00");
    await page.getByLabel("Until").fill("2099-01-01T00:00");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator("tr[data-action]").first().waitFor();
    await ctx.close();
  });

  it("Activity shows a flood of refused charges as aggregated events with their count", async () => {
    const c = uuid();
    const k = await issueAsInternal(server, c, { name: "flooder" });
    expect((await internalRpc("SetRateLimit", { customer_id: c, capacity: 100, refill_per_second: 10 })).status).toBe(200);
    expect((await internalRpc("Authenticate", { key: k.secret, charge: 100 })).body.valid).toBe(true);
    for (let i = 0; i < 6; i++) expect((await internalRpc("Authenticate", { key: k.secret, charge: 90 })).body.denialReason).toBe("DENIAL_REASON_RATE_LIMITED");
    await sleep(1500); // the aggregate interval ends and is written; the bucket refills for the page's own calls
    const ctx = await newContext();
    const page = await signIn(ctx, k.secret);
    await page.getByRole("link", { name: "Activity", exact: true }).click();
    await page.getByLabel("Action").selectOption("auth.failed");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator('tr[data-action="auth.failed"] td.reason', { hasText: "rate_limited" }).first().waitFor();
    const counts = await page.locator('tr[data-action="auth.failed"] td.num').allTextContents();
    expect(counts.reduce((n, t) => n + Number(t.replace("×", "")), 0)).toBe(6);
    expect(counts.some((t) => t.startsWith("×"))).toBe(true); // at least one event stands for several
    await ctx.close();
  });

  it("the usage chart shows the authentications just made, valid and denied, with the same numbers as GET /v1/usage", async () => {
    const c = uuid();
    const owner = await issueAsInternal(server, c, { name: "owner" });
    const used = await issueAsInternal(server, c, { name: "used", scopes: ["orders:read"] });
    for (let i = 0; i < 5; i++) await internalRpc("Authenticate", { key: used.secret });
    for (let i = 0; i < 3; i++) await internalRpc("Authenticate", { key: used.secret, required_scopes: ["orders:write"] });
    await sleep(400); // usage is written behind (USAGE_FLUSH_INTERVAL_MS=100)
    const ctx = await newContext();
    const page = await signIn(ctx, owner.secret);
    await page.getByRole("link", { name: `Usage of ${used.prefix}` }).click(); // from the key's row
    await page.locator('tr[data-outcome="valid"] td').filter({ hasText: "5" }).waitFor();
    expect(await page.getByLabel("Key").inputValue()).toBe(used.id);
    await expect(page.locator('tr[data-outcome="missing_scope"] td').textContent()).resolves.toBe("3");
    expect(await page.locator("#usage-chart canvas").count()).toBe(1);
    const api = await rest(server, "GET", `/v1/usage?key_id=${used.id}`, { key: owner.secret });
    expect(api.status).toBe(200);
    const valid = api.body.buckets.reduce((n: number, b: any) => n + Number(b.valid), 0);
    const denied = api.body.buckets.flatMap((b: any) => b.denied).filter((d: any) => d.reason === "DENIAL_REASON_MISSING_SCOPE");
    expect(valid).toBe(5);
    expect(denied.reduce((n: number, d: any) => n + Number(d.count), 0)).toBe(3);
    await ctx.close();
  });

  it("a read-only key sees no write actions, and a write forged from its session is refused", async () => {
    const ro = await issueAsInternal(server, customer, { name: "read only", scopes: ["api_keys:read", "audit:read"] });
    const ctx = await newContext();
    const page = await signIn(ctx, ro.secret);
    await page.locator(`tr[data-key-id="${ro.id}"]`).waitFor();
    expect(await page.getByRole("button", { name: "Issue a key" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /^(Edit|Revoke) / }).count()).toBe(0);
    await page.getByText("read-only").waitFor();
    const forged = await page.evaluate(async () => {
      const res = await fetch("/apikeys.v1.ApiKeyService/IssueKey", {
        method: "POST",
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: JSON.stringify({ name: "forged", scopes: ["api_keys:read"] }),
      });
      return { status: res.status, body: await res.json() };
    });
    expect(forged.status).toBe(403);
    expect(forged.body.code).toBe("permission_denied");
    await ctx.close();
  });

  it("an instance-bound key's session sees and issues only keys of its instance", async () => {
    const c = uuid();
    const instance = uuid();
    const bound = await issueAsInternal(server, c, { name: "bound admin", instance_id: instance });
    const unbound = await issueAsInternal(server, c, { name: "unbound key" });
    const ctx = await newContext();
    const page = await signIn(ctx, bound.secret);
    await page.locator(`tr[data-key-id="${bound.id}"]`).waitFor();
    expect(await page.locator(`tr[data-key-id="${unbound.id}"]`).count()).toBe(0);
    expect(await page.getByLabel("Instance").first().inputValue()).toBe(instance);
    await page.getByRole("button", { name: "Issue a key" }).click();
    await page.getByLabel("Name").fill("child of bound");
    expect(await page.locator("#issue-instance").inputValue()).toBe(instance);
    await page.getByRole("button", { name: "Issue key" }).click();
    await page.locator("#secret").waitFor();
    await page.getByRole("button", { name: /close/ }).click();
    const listed = await rest(server, "GET", "/v1/api-keys", { key: unbound.secret });
    expect(listed.body.data.find((k: any) => k.name === "child of bound").instance_id).toBe(instance);
    // Forged from the session: an unbound key is refused.
    const forged = await page.evaluate(async () => {
      const res = await fetch("/apikeys.v1.ApiKeyService/IssueKey", {
        method: "POST",
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: JSON.stringify({ name: "escape" }),
      });
      return res.status;
    });
    expect(forged).toBe(403);
    await ctx.close();
  });

  it("names, metadata and user agents with markup are shown as text and never run", async () => {
    const x = await issueAsInternal(server, customer, { name: XSS_NAME, metadata: { note: "<b onmouseover=alert(1)>x</b>" } });
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    const cell = page.locator(`tr[data-key-id="${x.id}"] td.name`);
    await cell.waitFor();
    expect(await cell.evaluate((td) => td.firstChild!.textContent)).toBe(XSS_NAME);
    expect(await page.locator(`tr[data-key-id="${x.id}"] img, tr[data-key-id="${x.id}"] b`).count()).toBe(0);
    await page.getByRole("link", { name: "Activity", exact: true }).click();
    await page.locator("tr[data-action]").first().waitFor();
    await page.getByRole("link", { name: "Usage", exact: true }).click();
    await page.locator("#usage-totals table").waitFor();
    await sleep(200);
    expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
    await ctx.close();
  });

  it("refuses requests carrying the session cookie from another origin or without the Connect headers", async () => {
    const ctx = await newContext();
    await signIn(ctx, admin.secret);
    const token = (await sessionCookie(ctx))!.value;
    expect((await withCookie(token, "ListKeys", {})).status).toBe(200);
    const foreign = await withCookie(token, "IssueKey", { name: "csrf" }, { origin: "http://evil.example" });
    expect(foreign.status).toBe(403);
    const noOrigin = await withCookie(token, "IssueKey", { name: "csrf" }, { origin: "" });
    expect(noOrigin.status).toBe(403);
    // A cross-site form post cannot set connect-protocol-version.
    const form = await fetch(`${server.url}/apikeys.v1.ApiKeyService/IssueKey`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: server.url, cookie: `zpk_session=${token}` },
      body: JSON.stringify({ name: "csrf" }),
    });
    expect(form.status).toBeGreaterThanOrEqual(400);
    const signOutCsrf = await fetch(`${server.url}/dashboard/api/sign-out`, { method: "POST", headers: { origin: "http://evil.example", cookie: `zpk_session=${token}` } });
    expect(signOutCsrf.status).toBe(403);
    // The cookie is not a credential on REST.
    expect((await fetch(`${server.url}/v1/api-keys`, { headers: { cookie: `zpk_session=${token}` } })).status).toBe(401);
    const keys = await rest(server, "GET", "/v1/api-keys?page_size=100", { key: admin.secret });
    expect(keys.body.data.map((k: any) => k.name)).not.toContain("csrf");
    await ctx.close();
  });

  it("sign-out ends the session, and revoking the signed-in key ends its sessions at once", async () => {
    const ctx = await newContext();
    const page = await signIn(ctx, admin.secret);
    const token = (await sessionCookie(ctx))!.value;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect((await withCookie(token, "ListKeys", {})).status).toBe(401);
    await ctx.close();

    const victim = await issueAsInternal(server, customer, { name: "soon revoked" });
    const ctx2 = await newContext();
    const page2 = await signIn(ctx2, victim.secret);
    const token2 = (await sessionCookie(ctx2))!.value;
    expect((await withCookie(token2, "ListKeys", {})).status).toBe(200);
    await rest(server, "DELETE", `/v1/api-keys/${victim.id}`, { key: admin.secret });
    expect((await withCookie(token2, "ListKeys", {})).status).toBe(401);
    await page2.reload();
    await page2.getByRole("button", { name: "Sign in" }).waitFor();
    await ctx2.close();
  });

  it("a portal URL signs in once, with the granted scopes, and never again; nor after it expires", async () => {
    const c = uuid();
    await issueAsInternal(server, c, { name: "platform-made" });
    const created = await internalRpc("CreatePortalSession", { customer_id: c, scopes: ["api_keys:read", "audit:read"], return_url: "https://app.example/settings" });
    expect(created.status).toBe(200);
    expect(created.body.url).toBe(`${server.url}${created.body.path}`);
    const ctx = await newContext();
    const page = await ctx.newPage();
    // The platform's page links to the URL: a cross-site navigation, as in real use.
    await page.setContent(`<a href="${created.body.url}">Manage API keys</a>`);
    await page.getByRole("link", { name: "Manage API keys" }).click();
    await page.getByRole("heading", { name: "API keys", exact: true }).waitFor();
    await page.getByRole("cell", { name: "platform-made" }).waitFor();
    await page.getByText("read-only").waitFor();
    expect(await page.getByRole("link", { name: /Back to the application/ }).getAttribute("href")).toBe("https://app.example/settings");
    const again = await (await newContext()).newPage();
    const second = await again.goto(created.body.url);
    expect(second!.status()).toBe(410);
    await again.getByRole("heading", { name: "This link no longer works" }).waitFor();

    const late = await internalRpc("CreatePortalSession", { customer_id: c });
    await sleep(PORTAL_TTL_MS + 500);
    const expired = await fetch(late.body.url, { redirect: "manual" });
    expect(expired.status).toBe(410);
    expect(expired.headers.get("set-cookie")).toBeNull();
    const js = await internalRpc("CreatePortalSession", { customer_id: c, return_url: "javascript:alert(1)" });
    expect(js.status).toBe(400);
    expect(js.body.code).toBe("invalid_argument");
    // A customer key cannot create portal sessions.
    const byKey = await fetch(`${server.url}/apikeys.v1.ApiKeyService/CreatePortalSession`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin.secret}`, "content-type": "application/json" },
      body: JSON.stringify({ customer_id: c }),
    });
    expect(byKey.status).toBe(403);
    await ctx.close();
  });

  it("marks the cookie Secure when a trusted proxy says the request came over HTTPS, and then checks the HTTPS origin", async () => {
    const host = new URL(server.url).host;
    const signInVia = (origin: string) =>
      fetch(`${server.url}/dashboard/api/sign-in`, {
        method: "POST",
        headers: { "content-type": "application/json", origin, "x-forwarded-proto": "https", "x-forwarded-host": host },
        body: JSON.stringify({ key: admin.secret }),
      });
    const res = await signInVia(`https://${host}`);
    expect(res.status).toBe(204);
    expect(res.headers.get("set-cookie")).toMatch(/^zpk_session=zds_[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    expect((await signInVia(server.url)).status).toBe(403); // the http:// origin is not ours behind that proxy
  });

  it("serves every dashboard response with the security headers", async () => {
    for (const path of ["/dashboard/", "/dashboard/app.js", "/dashboard/app.css", "/dashboard/portal/zdg_nope"]) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.headers.get("content-security-policy"), path).toMatch(/^default-src 'self';.*frame-ancestors 'none'/);
      expect(res.headers.get("referrer-policy"), path).toBe("no-referrer");
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
    }
    const html = await (await fetch(`${server.url}/dashboard/`)).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
    expect(html).not.toMatch(/style=/);
    expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere
  });

  it("axe-core finds no serious or critical violations on sign-in, Keys, the issue dialog, Activity and Usage", async () => {
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto("/dashboard/");
    await page.getByLabel("API key").waitFor();
    const found: Record<string, string[]> = { "sign-in": await axeSerious(page) };
    await page.getByLabel("API key").fill(admin.secret);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("tr[data-key-id]").first().waitFor();
    found.keys = await axeSerious(page);
    await page.getByRole("button", { name: "Issue a key" }).click();
    await page.locator("#issue-dialog").waitFor();
    found["issue dialog"] = await axeSerious(page);
    await page.keyboard.press("Escape");
    await page.locator("#issue-dialog").waitFor({ state: "detached" });
    await page.getByRole("link", { name: "Activity", exact: true }).click();
    await page.locator("tr[data-action]").first().waitFor();
    found.activity = await axeSerious(page);
    await page.getByRole("link", { name: "Usage", exact: true }).click();
    await page.locator("#usage-totals table").waitFor();
    found.usage = await axeSerious(page);
    expect(found).toEqual({ "sign-in": [], keys: [], "issue dialog": [], activity: [], usage: [] });
    await ctx.close();
  });

  it("writes no session token, portal token or key secret to the server's log", async () => {
    await sleep(200);
    const log = server.output();
    expect(log).toContain('"msg":"ready"');
    expect(log).not.toMatch(/zd[sg]_[A-Za-z0-9_-]{43}/);
    expect(log).not.toContain(admin.secret);
  });

  it("is usable by keyboard: sign in, open the issue dialog, and close it with Escape", async () => {
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto("/dashboard/");
    await page.getByLabel("API key").waitFor();
    await page.keyboard.type(admin.secret); // focus starts in the key field
    await page.keyboard.press("Enter");
    await page.locator("tr[data-key-id]").first().waitFor();
    await page.getByRole("button", { name: "Issue a key" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#issue-dialog").waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("issue-name");
    await page.keyboard.type("typed by keyboard");
    await page.keyboard.press("Enter");
    await page.locator("#secret-dialog").waitFor();
    await page.keyboard.press("Escape");
    await page.locator("#secret-dialog").waitFor({ state: "detached" });
    await page.getByRole("cell", { name: /typed by keyboard/ }).waitFor();
    await ctx.close();
  });
});

describe("dashboard sessions with WORKERS=2", { timeout: 120_000 }, () => {
  it("a session made on one worker is honoured by every worker, and sign-out ends it on all of them", async () => {
    const multi = await startServer({ WORKERS: "2" });
    try {
      const owner = await issueAsInternal(multi, uuid(), { name: "multi" });
      const signIn = await fetch(`${multi.url}/dashboard/api/sign-in`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: multi.url, connection: "close" },
        body: JSON.stringify({ key: owner.secret }),
      });
      const token = /zpk_session=([^;]+)/.exec(signIn.headers.get("set-cookie") ?? "")![1]!;
      const call = () =>
        fetch(`${multi.url}/apikeys.v1.ApiKeyService/ListKeys`, {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1", origin: multi.url, cookie: `zpk_session=${token}`, connection: "close" },
          body: "{}",
        }).then((r) => r.status);
      const statuses = await Promise.all(Array.from({ length: 12 }, call));
      expect(statuses.every((s) => s === 200)).toBe(true);
      await fetch(`${multi.url}/dashboard/api/sign-out`, { method: "POST", headers: { origin: multi.url, cookie: `zpk_session=${token}`, connection: "close" } });
      const after = await Promise.all(Array.from({ length: 6 }, call));
      expect(after.every((s) => s === 401)).toBe(true);
    } finally {
      await multi.stop();
    }
  });
});
