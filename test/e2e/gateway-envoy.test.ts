import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildEnvoyGoClient, internalRpc, type IssuedKey, issueKey, revokeKey, runCommand } from "../helpers/gateway.js";
import { eventually, wellFormedUnknownKey } from "../helpers/rest-support.js";
import { grpcJsClient } from "../helpers/rpc-clients.js";
import { runToExit } from "../helpers/run-process.js";
import { REPO, type RunningServer, sleep, startServer, tempDir } from "../helpers/server.js";

/**
 * Envoy external authorization (issue 15): `envoy.service.auth.v3.Authorization/Check` on
 * GRPC_PORT, called by a Go program built with go-control-plane's generated envoy/service/auth/v3
 * types (test/clients/envoy-go: the messages Envoy itself sends), through every case a gateway
 * meets; reflection on GRPC_PORT lists the service; zpk's vendored proto subset has the same
 * names and field numbers as go-control-plane's; a store outage is UNAVAILABLE.
 */

interface Case {
  name: string;
  path?: string;
  headers?: Record<string, string>;
  raw_headers?: boolean;
  context_extensions?: Record<string, string>;
  token?: string;
  request_id?: string;
  source_ip?: string;
}
interface Result {
  name: string;
  grpc_code: string;
  grpc_message?: string;
  status_code: number;
  kind: "ok" | "denied" | "none";
  headers?: Record<string, string>;
  append_actions?: Record<string, string>;
  headers_to_remove?: string[];
  response_headers?: Record<string, string>;
  http_status?: number;
  body?: string;
}

let server: RunningServer;
let envoyGo: string;

/** Runs the Go client over the cases; one result per case, by name. */
async function check(cases: Case[], opts: { server?: RunningServer; token?: string } = {}): Promise<Record<string, Result>> {
  const s = opts.server ?? server;
  const r = await runCommand(envoyGo, ["-addr", `127.0.0.1:${s.grpcPort}`, "-token", opts.token ?? s.internalToken], {
    input: JSON.stringify(cases.map((c) => ({ path: "/orders", ...c }))),
    timeoutMs: 60_000,
  });
  expect(r.code, `envoy-go exited ${r.code}\n${r.stderr}`).toBe(0);
  const out: Record<string, Result> = {};
  for (const line of r.stdout.trim().split("\n")) {
    const res = JSON.parse(line) as Result;
    out[res.name] = res;
  }
  return out;
}

function expectDenied(r: Result, status: number, code: string) {
  const what = JSON.stringify(r);
  expect(r.grpc_code, what).toBe("OK");
  expect(r.kind, what).toBe("denied");
  expect(r.status_code, what).not.toBe(0);
  expect(r.http_status, what).toBe(status);
  const body = JSON.parse(r.body ?? "{}");
  expect(body.error?.code, what).toBe(code);
  expect(typeof body.error?.message, what).toBe("string");
  expect(body.request_id, what).toMatch(/^\S+$/);
  expect(r.headers?.["content-type"], what).toBe("application/json");
}

const CUSTOMER = crypto.randomUUID();
const INSTANCE = crypto.randomUUID();
const bearer = (k: IssuedKey) => ({ authorization: `Bearer ${k.secret}` });

beforeAll(async () => {
  [server, envoyGo] = await Promise.all([startServer(), buildEnvoyGoClient()]);
}, 600_000);

afterAll(async () => {
  await server?.stop();
});

describe("Envoy ext_authz Check on GRPC_PORT (go-control-plane client)", () => {
  it("allows a valid key: identity headers overwrite forged ones, the credential and foreign x-zpk-* are removed, x-ratelimit-* go to the client", async () => {
    const key = await issueKey(server, CUSTOMER, { scopes: ["orders:read", "orders:write"] });
    const open = await issueKey(server, CUSTOMER);
    const res = await check([
      { name: "bearer", headers: { ...bearer(key), "x-zpk-customer-id": "forged", "x-zpk-admin": "true", "user-agent": "curl/8" }, request_id: "envoy-req-1" },
      { name: "x-api-key raw headers", raw_headers: true, headers: { "x-api-key": open.secret, authorization: "Basic dXNlcjpwdw==" } },
      { name: "keep credential", headers: bearer(key), context_extensions: { keep_credential: "true" } },
    ]);
    const r = res.bearer!;
    expect(r.kind, JSON.stringify(r)).toBe("ok");
    expect(r.status_code).toBe(0);
    expect(r.headers).toEqual({
      "x-zpk-customer-id": CUSTOMER,
      "x-zpk-key-id": key.id,
      "x-zpk-key-prefix": key.prefix,
      "x-zpk-scopes": "orders:read,orders:write",
      "x-zpk-environment": "live",
    });
    for (const action of Object.values(r.append_actions ?? {})) expect(action).toBe("OVERWRITE_IF_EXISTS_OR_ADD");
    // Unbound key: no x-zpk-instance-id may survive from the client.
    expect(r.headers_to_remove).toEqual(["authorization", "x-zpk-admin", "x-zpk-instance-id"]);
    expect(r.response_headers).toEqual({ "x-ratelimit-limit": "60", "x-ratelimit-remaining": expect.stringMatching(/^\d+$/) });

    const raw = res["x-api-key raw headers"]!;
    expect(raw.kind, JSON.stringify(raw)).toBe("ok");
    // An unrestricted key is told apart from one with few scopes.
    expect(raw.headers?.["x-zpk-scopes"]).toBe("(unrestricted)");
    expect(raw.headers?.["x-zpk-key-id"]).toBe(open.id);
    // The upstream's own Basic credential stays; our x-api-key goes.
    expect(raw.headers_to_remove).toEqual(["x-api-key", "x-zpk-instance-id"]);

    expect(res["keep credential"]!.headers_to_remove).toEqual(["x-zpk-instance-id"]);
  });

  it("denies with our JSON body and the status a client expects: 401 missing/malformed/unknown/revoked/expired, 403 scope/instance, 400 key in URL", async () => {
    const key = await issueKey(server, CUSTOMER, { scopes: ["orders:read"] });
    const revoked = await issueKey(server, CUSTOMER);
    await revokeKey(server, revoked);
    const expiring = await issueKey(server, CUSTOMER, { expiresAt: new Date(Date.now() + 1500).toISOString() });
    const bound = await issueKey(server, CUSTOMER, { instanceId: INSTANCE });
    await sleep(2000);
    const res = await check([
      { name: "missing", headers: {} },
      { name: "malformed", headers: { authorization: "Bearer zpk_live_nonsense" } },
      { name: "unknown", headers: { authorization: `Bearer ${wellFormedUnknownKey()}` } },
      { name: "revoked", headers: bearer(revoked) },
      { name: "expired", headers: bearer(expiring) },
      { name: "missing scope", headers: bearer(key), context_extensions: { required_scopes: "orders:read,orders:write" } },
      { name: "wrong instance", headers: bearer(bound), context_extensions: { instance_id: crypto.randomUUID() } },
      { name: "wrong instance header", headers: { ...bearer(bound), "x-instance-id": crypto.randomUUID() }, context_extensions: { instance_header: "x-instance-id" } },
      { name: "right instance header", headers: { ...bearer(bound), "x-instance-id": INSTANCE }, context_extensions: { instance_header: "x-instance-id" } },
      { name: "key in query", path: `/orders?api_key=${key.secret}`, headers: bearer(key) },
      { name: "key-like query value", path: `/orders?q=${key.secret}`, headers: {} },
      { name: "bad charge setting", headers: bearer(key), context_extensions: { charge: "lots" } },
    ]);
    expectDenied(res.missing!, 401, "unauthenticated");
    expectDenied(res.malformed!, 401, "unauthenticated");
    expectDenied(res.unknown!, 401, "unauthenticated");
    expectDenied(res.revoked!, 401, "key_revoked");
    expectDenied(res.expired!, 401, "key_expired");
    expect(res.missing!.headers?.["www-authenticate"]).toBe("Bearer");
    expectDenied(res["missing scope"]!, 403, "permission_denied");
    expect(JSON.parse(res["missing scope"]!.body!).error.message).toContain("orders:write");
    expectDenied(res["wrong instance"]!, 403, "permission_denied");
    expectDenied(res["wrong instance header"]!, 403, "permission_denied");
    const right = res["right instance header"]!;
    expect(right.kind, JSON.stringify(right)).toBe("ok");
    expect(right.headers?.["x-zpk-instance-id"]).toBe(INSTANCE);
    expect(right.headers_to_remove).toEqual(["authorization"]);
    expectDenied(res["key in query"]!, 400, "key_in_url");
    expectDenied(res["key-like query value"]!, 400, "key_in_url");
    expectDenied(res["bad charge setting"]!, 500, "internal");
    expect(JSON.parse(res["bad charge setting"]!.body!).error.message).toContain("charge");
  });

  it("a refused Check is in the customer's audit trail with the client's address, user agent and Envoy's request id", async () => {
    const c = crypto.randomUUID();
    const key = await issueKey(server, c);
    await revokeKey(server, key);
    const res = await check([{ name: "r", headers: { ...bearer(key), "user-agent": "shop-app/2.1" }, request_id: "envoy-audit-1", source_ip: "198.51.100.23" }]);
    expectDenied(res.r!, 401, "key_revoked");
    expect(JSON.parse(res.r!.body!).request_id).toBe("envoy-audit-1");
    const failedEvent = (requestId: string) =>
      eventually(async () => {
        const trail = await internalRpc<{ data: any[] }>(server, "ListAuditEvents", { customerId: c, action: "auth.failed" });
        return (trail.data ?? []).find((e) => e.requestId === requestId);
      }, 4000, 100);
    const failed = await failedEvent("envoy-audit-1");
    expect(failed, "no auth.failed event within 4 s").toBeDefined();
    expect(failed.reason).toBe("revoked");
    expect(failed.target.keyId).toBe(key.id);
    expect(failed.ip).toBe("198.51.100.23");
    expect(failed.userAgent).toBe("shop-app/2.1");
    expect(failed.requestId).toBe("envoy-audit-1");

    // With no source address in the CheckRequest, the address is the gRPC peer's (Envoy itself).
    const bare = await check([{ name: "r", headers: bearer(key), request_id: "envoy-audit-2", source_ip: "-" }]);
    expectDenied(bare.r!, 401, "key_revoked");
    const fromPeer = await failedEvent("envoy-audit-2");
    expect(fromPeer, "no auth.failed event for the Check without a source address within 4 s").toBeDefined();
    expect(fromPeer.ip).toBe("127.0.0.1");
  });

  it("charges `charge` tokens (default 1) and answers 429 with Retry-After once the bucket is empty", async () => {
    const key = await issueKey(server, crypto.randomUUID());
    const res = await check([
      { name: "one", headers: bearer(key) },
      { name: "rest", headers: bearer(key), context_extensions: { charge: "59" } },
      { name: "empty", headers: bearer(key) },
      { name: "free", headers: bearer(key), context_extensions: { charge: "0" } },
    ]);
    expect(res.one!.response_headers?.["x-ratelimit-remaining"]).toBe("59");
    expect(res.rest!.kind).toBe("ok");
    expect(Number(res.rest!.response_headers?.["x-ratelimit-remaining"])).toBeLessThanOrEqual(1);
    // A token may have refilled (1/s) between the calls: drain whatever came back.
    let empty = res.empty!;
    for (let i = 0; i < 5 && empty.kind === "ok"; i++) empty = (await check([{ name: "empty", headers: bearer(key) }])).empty!;
    expectDenied(empty, 429, "rate_limited");
    expect(Number(empty.headers?.["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(empty.headers?.["x-ratelimit-remaining"]).toBe("0");
    expect(res.free!.kind, "charge 0 takes no token and is not refused").toBe("ok");
  });

  it("needs the internal credential (UNAUTHENTICATED without it or with a wrong one)", async () => {
    const key = await issueKey(server, CUSTOMER);
    const none = await check([{ name: "c", headers: bearer(key) }], { token: "" });
    expect(none.c!.grpc_code).toBe("Unauthenticated");
    const wrong = await check([{ name: "c", headers: bearer(key) }], { token: "not-the-internal-token-at-all" });
    expect(wrong.c!.grpc_code).toBe("Unauthenticated");
    // A customer key is no gateway credential either.
    const customer = await check([{ name: "c", headers: bearer(key) }], { token: key.secret });
    expect(customer.c!.grpc_code).toBe("Unauthenticated");
  });

  it("serves reflection on GRPC_PORT listing the Envoy service, with its descriptor (what grpcurl uses)", async () => {
    const r = await runCommand(envoyGo, ["-addr", `127.0.0.1:${server.grpcPort}`, "-list-services"], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("service envoy.service.auth.v3.Authorization\n");
    expect(r.stdout).toContain("service apikeys.v1.ApiKeyService\n");
    expect(r.stdout).toContain("file envoy/service/auth/v3/external_auth.proto\n");
    expect(r.stdout).toContain("file envoy/config/core/v3/base.proto\n");
  });

  it("vendors a wire-compatible subset: every message, field and enum value matches go-control-plane's", async () => {
    const set = join(tempDir("zpk-envoy-desc-"), "set.binpb");
    const build = await runCommand(join(REPO, "node_modules/.bin/buf"), ["build", "-o", set], { timeoutMs: 60_000 });
    expect(build.code, build.stderr).toBe(0);
    const r = await runCommand(envoyGo, ["-compare-descriptors", set], { timeoutMs: 30_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/compared \d+ fields\/values\/methods, 0 differences/);
  });

  it("a store outage is UNAVAILABLE (so Envoy's failure_mode_allow decides), and it recovers", async () => {
    const key = await issueKey(server, crypto.randomUUID());
    const holder = new Database(join(server.dataDir, "zpk.sqlite"), { timeout: 10_000 });
    try {
      holder.prepare("BEGIN IMMEDIATE").run(); // the write lock: the bucket charge cannot be written
      const res = await check([{ name: "c", headers: bearer(key) }]);
      expect(res.c!.grpc_code, JSON.stringify(res.c)).toBe("Unavailable");
    } finally {
      holder.prepare("ROLLBACK").run();
      holder.close();
    }
    const after = await check([{ name: "c", headers: bearer(key) }]);
    expect(after.c!.kind).toBe("ok");
  }, 60_000);
});

describe("AUTHZ_REQUIRE_INTERNAL_TOKEN=false (a port only the mesh reaches)", () => {
  let mesh: RunningServer;
  beforeAll(async () => {
    mesh = await startServer({ INTERNAL_TOKEN: "", AUTHZ_REQUIRE_INTERNAL_TOKEN: "false" });
  }, 60_000);
  afterAll(async () => {
    await mesh?.stop();
  });

  it("Check needs no credential, while ApiKeyService's internal RPCs still do", async () => {
    const res = await check([{ name: "garbage", headers: { authorization: "Bearer zpk_live_x" } }], { server: mesh, token: "" });
    expectDenied(res.garbage!, 401, "unauthenticated");
    const rpc = grpcJsClient(`127.0.0.1:${mesh.grpcPort}`);
    try {
      const auth = await rpc.call("authenticate", { key: "zpk_live_x" });
      expect(auth.ok ? "ok" : auth.code).toBe(16);
    } finally {
      rpc.close();
    }
  });
});

it("AUTHZ_REQUIRE_INTERNAL_TOKEN and AUTHZ_PORT are validated at start with one line naming them", async () => {
  for (const [name, value] of [["AUTHZ_REQUIRE_INTERNAL_TOKEN", "maybe"], ["AUTHZ_PORT", "70000"]] as const) {
    const r = await runToExit(process.execPath, ["--import", "tsx", "src/main.ts"], { HOST: "127.0.0.1", PORT: "0", GRPC_PORT: "0", DATA_DIR: tempDir(), [name]: value }, 60_000);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(name);
  }
}, 120_000);
