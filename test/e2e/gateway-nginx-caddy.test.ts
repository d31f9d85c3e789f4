import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authzPortOf, internalRpc, type IssuedKey, issueKey, requireTool, revokeKey, startEchoUpstream } from "../helpers/gateway.js";
import { freePort, tcpOpen, withFreshPorts } from "../helpers/loopback.js";
import { wellFormedUnknownKey } from "../helpers/rest-support.js";
import { REPO, type RunningServer, sleep, startServer, tempDir } from "../helpers/server.js";

/**
 * HTTP forward-auth (issue 15) behind real proxies: Debian's nginx (`auth_request`) and Caddy
 * (`forward_auth`), each started here on loopback with the very config files the README shows
 * (docs/gateways/nginx.conf, docs/gateways/Caddyfile), in front of an upstream that echoes the
 * headers it received. The client talks only to the proxy.
 */

const NGINX = "/usr/sbin/nginx";
const CADDY = "/usr/bin/caddy";

let zpk: RunningServer;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
const procs: ChildProcess[] = [];
const proxies: Record<string, { url: string; output: () => string }> = {};

/** Starts nginx with docs/gateways/nginx.conf, its four marked values replaced; non-root paths. */
async function startNginx(authzPort: number): Promise<{ url: string; output: () => string }> {
  const dir = tempDir("zpk-nginx-");
  const port = await freePort();
  const replacements: [string, string][] = [
    ["server 127.0.0.1:9091;", `server 127.0.0.1:${authzPort};`],
    ["server 127.0.0.1:3000;", `server 127.0.0.1:${upstream.port};`],
    ["listen 127.0.0.1:8000;", `listen 127.0.0.1:${port};`],
    ["CHANGE-ME-zpk-INTERNAL_TOKEN", zpk.internalToken],
  ];
  let site = readFileSync(join(REPO, "docs/gateways/nginx.conf"), "utf8");
  for (const [from, to] of replacements) {
    if (!site.includes(from)) throw new Error(`docs/gateways/nginx.conf no longer contains ${JSON.stringify(from)}: update this test with it`);
    site = site.replace(from, to);
  }
  writeFileSync(join(dir, "zpk-site.conf"), site);
  for (const t of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, t));
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${dir}/zpk-site.conf;
}
`,
  );
  const child = spawn(NGINX, ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`], { stdio: ["ignore", "pipe", "pipe"] });
  return waitListening("nginx", child, port, () => safeRead(join(dir, "error.log")));
}

/** Starts Caddy with docs/gateways/Caddyfile and its environment variables. */
async function startCaddy(authzPort: number): Promise<{ url: string; output: () => string }> {
  const dir = tempDir("zpk-caddy-");
  const port = await freePort();
  const child = spawn(CADDY, ["run", "--adapter", "caddyfile", "--config", join(REPO, "docs/gateways/Caddyfile")], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dir,
      XDG_DATA_HOME: join(dir, "data"),
      XDG_CONFIG_HOME: join(dir, "config"),
      LISTEN: `127.0.0.1:${port}`,
      APP: `127.0.0.1:${upstream.port}`,
      ZPK_AUTHZ: `127.0.0.1:${authzPort}`,
      ZPK_INTERNAL_TOKEN: zpk.internalToken,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return waitListening("caddy", child, port);
}

async function waitListening(name: string, child: ChildProcess, port: number, extra = () => ""): Promise<{ url: string; output: () => string }> {
  procs.push(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const output = () => `${out}\n${extra()}`;
  const deadline = Date.now() + 20_000;
  while (!(await tcpOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start (exit ${child.exitCode}):\n${output()}`);
    await sleep(50);
  }
  return { url: `http://127.0.0.1:${port}`, output };
}

const safeRead = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
};

interface Reply {
  status: number;
  headers: Headers;
  body: any;
  /** What the upstream saw (when the request reached it). */
  seen: { url: string; headers: Record<string, string> } | null;
}

async function get(proxy: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${proxies[proxy]!.url}${path}`, { headers, signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: kept as text for the failure message */
  }
  const seen = res.status === 200 && body && typeof body === "object" && "headers" in body ? body : null;
  return { status: res.status, headers: res.headers, body, seen };
}

function expectRefused(r: Reply, status: number, code: string, proxy: string) {
  const what = `${proxy}: ${r.status} ${JSON.stringify(r.body)}\n${proxies[proxy]!.output().slice(-2000)}`;
  expect(r.status, what).toBe(status);
  expect(r.body?.error?.code, what).toBe(code);
  expect(typeof r.body?.error?.message, what).toBe("string");
  expect(r.body?.request_id, what).toMatch(/^\S+$/);
  expect(r.headers.get("content-type"), what).toMatch(/^application\/json/);
  expect(r.seen, "the upstream must not be reached").toBeNull();
}

beforeAll(async () => {
  requireTool("nginx", NGINX);
  requireTool("caddy", CADDY);
  [zpk, upstream] = await Promise.all([startServer(), startEchoUpstream()]);
  const authzPort = authzPortOf(zpk);
  const [n, c] = await Promise.all([withFreshPorts(() => startNginx(authzPort)), withFreshPorts(() => startCaddy(authzPort))]);
  proxies.nginx = n;
  proxies.caddy = c;
}, 120_000);

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once("exit", r)) : null)));
  await upstream?.close();
  await zpk?.stop();
});

describe.each(["nginx", "caddy"])("forward-auth behind %s (the README's config)", (proxy) => {
  const customer = crypto.randomUUID();
  let key: IssuedKey;
  beforeAll(async () => {
    key = await issueKey(zpk, customer, { scopes: ["orders:read"] });
  });

  it("a valid key reaches the upstream with the identity headers, without the key, without forged x-zpk-*; the client sees x-ratelimit-*", async () => {
    const r = await get(proxy, "/orders?page=2", { authorization: `Bearer ${key.secret}`, "x-zpk-customer-id": "forged", "x-zpk-instance-id": "forged" });
    expect(r.status, `${JSON.stringify(r.body)}\n${proxies[proxy]!.output().slice(-2000)}`).toBe(200);
    const h = r.seen!.headers;
    expect(r.seen!.url).toBe("/orders?page=2");
    expect(h["x-zpk-customer-id"]).toBe(customer);
    expect(h["x-zpk-key-id"]).toBe(key.id);
    expect(h["x-zpk-key-prefix"]).toBe(key.prefix);
    expect(h["x-zpk-scopes"]).toBe("orders:read");
    expect(h["x-zpk-environment"]).toBe("live");
    expect(h["x-zpk-instance-id"] ?? "", "an unbound key: no (or an empty) instance id, never the forged one").toBe("");
    expect(h.authorization).toBeUndefined();
    expect(h["x-api-key"]).toBeUndefined();
    expect(JSON.stringify(h)).not.toContain(key.secret);
    expect(r.headers.get("x-ratelimit-limit")).toBe("60");
    expect(r.headers.get("x-ratelimit-remaining")).toMatch(/^\d+$/);
  });

  it("x-api-key works too and is stripped; an unrestricted key says (unrestricted)", async () => {
    const open = await issueKey(zpk, customer);
    const r = await get(proxy, "/", { "x-api-key": open.secret });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.seen!.headers["x-api-key"]).toBeUndefined();
    expect(r.seen!.headers["x-zpk-scopes"]).toBe("(unrestricted)");
  });

  it("missing, unknown, revoked and expired keys are 401 with our JSON body", async () => {
    const revoked = await issueKey(zpk, customer);
    await revokeKey(zpk, revoked);
    const expiring = await issueKey(zpk, customer, { expiresAt: new Date(Date.now() + 1200).toISOString() });
    await sleep(1500);
    expectRefused(await get(proxy, "/orders"), 401, "unauthenticated", proxy);
    expectRefused(await get(proxy, "/orders", { authorization: `Bearer ${wellFormedUnknownKey()}` }), 401, "unauthenticated", proxy);
    expectRefused(await get(proxy, "/orders", { authorization: "Bearer zpk_live_typo" }), 401, "unauthenticated", proxy);
    expectRefused(await get(proxy, "/orders", { authorization: `Bearer ${revoked.secret}` }), 401, "key_revoked", proxy);
    expectRefused(await get(proxy, "/orders", { authorization: `Bearer ${expiring.secret}` }), 401, "key_expired", proxy);
  });

  it("a route's missing scope is 403 permission_denied", async () => {
    expectRefused(await get(proxy, "/reports/q3", { authorization: `Bearer ${key.secret}` }), 403, "permission_denied", proxy);
    const reader = await issueKey(zpk, crypto.randomUUID(), { scopes: ["reports:read"] });
    const ok = await get(proxy, "/reports/q3", { authorization: `Bearer ${reader.secret}` });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    // That route costs 5 tokens (charge=5).
    expect(ok.headers.get("x-ratelimit-remaining")).toBe("55");
  });

  it("an empty bucket is 429 with Retry-After and our body", async () => {
    const c = crypto.randomUUID();
    const k = await issueKey(zpk, c);
    await internalRpc(zpk, "SetRateLimit", { customerId: c, capacity: 2, refillPerSecond: 0.001 });
    for (let i = 0; i < 2; i++) expect((await get(proxy, "/orders", { authorization: `Bearer ${k.secret}` })).status).toBe(200);
    const r = await get(proxy, "/orders", { authorization: `Bearer ${k.secret}` });
    expectRefused(r, 429, "rate_limited", proxy);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(r.headers.get("x-ratelimit-remaining")).toBe("0");
  });

  it("a store outage is 503 unavailable with our body (fail closed), and it recovers", async () => {
    const k = await issueKey(zpk, crypto.randomUUID());
    const holder = new Database(join(zpk.dataDir, "zpk.sqlite"), { timeout: 10_000 });
    try {
      holder.prepare("BEGIN IMMEDIATE").run(); // the write lock: the bucket charge cannot be written
      expectRefused(await get(proxy, "/orders", { authorization: `Bearer ${k.secret}` }), 503, "unavailable", proxy);
    } finally {
      holder.prepare("ROLLBACK").run();
      holder.close();
    }
    expect((await get(proxy, "/orders", { authorization: `Bearer ${k.secret}` })).status).toBe(200);
  }, 60_000);

  it("a key in the query string is refused (403 key_in_url) and never reaches the upstream", async () => {
    expectRefused(await get(proxy, `/orders?api_key=${key.secret}`), 403, "key_in_url", proxy);
    expectRefused(await get(proxy, `/orders?q=${key.secret}`, { authorization: `Bearer ${key.secret}` }), 403, "key_in_url", proxy);
  });
});

it("the README shows exactly the nginx, Caddy and Envoy configs of docs/gateways (the ones run here)", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  for (const [file, lang] of [["nginx.conf", "nginx"], ["Caddyfile", "caddyfile"], ["envoy.yaml", "yaml"]]) {
    const text = readFileSync(join(REPO, "docs/gateways", file!), "utf8");
    expect(readme.includes("```" + lang + "\n" + text + "```"), `README.md must include docs/gateways/${file} verbatim in a \`\`\`${lang} block`).toBe(true);
  }
});

describe("AUTHZ_PORT itself", () => {
  it("refuses a caller without the proxy's credential (Proxy-Authorization: Bearer <INTERNAL_TOKEN>)", async () => {
    const key = await issueKey(zpk, crypto.randomUUID());
    const res = await fetch(`http://127.0.0.1:${authzPortOf(zpk)}/check`, { headers: { authorization: `Bearer ${key.secret}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe("unauthenticated");
    const ok = await fetch(`http://127.0.0.1:${authzPortOf(zpk)}/check`, {
      headers: { authorization: `Bearer ${key.secret}`, "proxy-authorization": `Bearer ${zpk.internalToken}` },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-zpk-key-id")).toBe(key.id);
  });
});
