import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/transport/openapi/openapi-document.js";
import { restRoutes } from "../../src/transport/rest/routes.js";
import { runToExit } from "../helpers/run-process.js";
import { schemathesisVenv } from "../helpers/schemathesis-venv.js";
import { REPO, type RunningServer, startServer } from "../helpers/server.js";

/**
 * Issue 16: the OpenAPI document is valid OpenAPI 3.1 by two real validators, is what the proto
 * generates (docs/openapi.json is up to date), describes every REST route the server has, and is
 * served with the reference page and the proto on PORT without a key.
 */
const NO_TELEMETRY = { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", DO_NOT_TRACK: "1", BUF_DISABLE_TELEMETRY: "1" };
const checkedIn = readFileSync(`${REPO}docs/openapi.json`, "utf8");
const doc = JSON.parse(checkedIn) as {
  openapi: string;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
};

let server: RunningServer;
let venv: string;
beforeAll(async () => {
  [server, venv] = await Promise.all([startServer(), schemathesisVenv()]);
}, 320_000);
afterAll(async () => {
  await server?.stop();
});

describe("docs/openapi.json", () => {
  it("is valid OpenAPI 3.1 for redocly lint (recommended rules): no error, no warning", async () => {
    const r = await runToExit("npx", ["--no-install", "redocly", "lint", "--config", "docs/redocly.yaml", "docs/openapi.json", "--format", "stylish"], NO_TELEMETRY, 120_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain("Your API description is valid");
    expect(r.stdout + r.stderr).not.toMatch(/You have \d+ warning/);
  }, 130_000);

  it("is valid OpenAPI 3.1 for openapi-spec-validator", async () => {
    const r = await runToExit(`${venv}/bin/openapi-spec-validator`, ["docs/openapi.json"], {}, 60_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("docs/openapi.json: OK");
    expect(doc.openapi).toBe("3.1.0");
  }, 70_000);

  it("is exactly what `npm run generate` makes from the proto", async () => {
    const r = await runToExit("node", ["--import", "tsx", "scripts/gen-openapi.ts", "--check"], NO_TELEMETRY, 60_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 70_000);

  it("has one operation per REST route of the server, with its success status and every error status", () => {
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => `${m.toUpperCase()} ${path} ${op.operationId}`));
    const routes = restRoutes().map((r) => `${r.httpMethod} ${r.template} ${r.method.name}`);
    expect(ops.sort()).toEqual(routes.sort());
    const issue = doc.paths["/v1/api-keys"]!.post!;
    expect(Object.keys(issue.responses)).toEqual(["201", "400", "401", "403", "404", "409", "413", "429", "500", "503"]);
    expect(JSON.stringify(issue.responses["201"])).toContain("#/components/headers/Location");
    expect(Object.keys(doc.paths["/v1/api-keys/{id}"]!.delete!.responses)).toContain("204");
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(["apiKeyHeader", "bearerAuth"]);
  });

  it("a route added to the proto appears by construction, with its parameters, body and links", () => {
    const routes = restRoutes();
    const update = routes.find((r) => r.method.name === "UpdateKey")!;
    // As if the proto declared `post: "/v1/api-keys/{id}:touch" body: "*"` on an RPC shaped like UpdateKey.
    const extra = { ...update, httpMethod: "POST", template: "/v1/api-keys/{id}:touch" };
    const generated = openApiDocument({ comments: () => undefined, version: "0", routes: [...routes, extra] }) as typeof doc;
    const op = generated.paths["/v1/api-keys/{id}:touch"]!.post! as unknown as {
      parameters: { name: string; in: string }[];
      requestBody: { content: { "application/json": { schema: { properties: Record<string, unknown> } } } };
      responses: Record<string, { links?: Record<string, unknown> }>;
    };
    expect(op.parameters).toEqual([expect.objectContaining({ name: "id", in: "path" })]);
    expect(Object.keys(op.requestBody.content["application/json"].schema.properties)).toContain("name");
    expect(Object.keys(op.responses["200"]!.links ?? {})).toEqual(expect.arrayContaining(["GetKey", "RevokeKey"]));
  });

  it("describes the key object as the server writes it: every field required, unset ones nullable, descriptions from the proto", () => {
    const key = doc.components.schemas.Key as { required: string[]; properties: Record<string, { type?: unknown; format?: string; description?: string }> };
    expect(key.required).toEqual(expect.arrayContaining(["id", "instance_id", "scopes", "metadata", "last_used_at", "total_requests", "revoked_at", "is_active"]));
    expect(key.properties.instance_id!.type).toEqual(["string", "null"]);
    expect(key.properties.revoked_at).toMatchObject({ type: ["string", "null"], format: "date-time" });
    expect(key.properties.total_requests).toMatchObject({ type: "integer", format: "int64" });
    expect(key.properties.scopes!.type).toBe("array");
    expect(key.properties.prefix!.description).toContain("never enough to authenticate");
    const codes = (doc.components.schemas.ErrorCode as { enum: string[] }).enum;
    expect(codes).toEqual(expect.arrayContaining(["invalid_argument", "key_in_url", "unauthenticated", "rate_limited", "unavailable"]));
  });
});

describe("served on PORT without a key", () => {
  it("GET /v1/openapi.json is the checked-in document", async () => {
    const res = await fetch(`${server.url}/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect(await res.text()).toBe(checkedIn);
  });

  it("GET /docs is the API reference page: Redoc from this server, no CDN, a strict CSP", async () => {
    const res = await fetch(`${server.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('spec-url="/v1/openapi.json"');
    const scripts = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts).toEqual(["/docs/redoc.standalone.js"]);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script>(?!<)/); // no inline script: CSP allows none
    const js = await fetch(`${server.url}${scripts[0]}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect((await js.arrayBuffer()).byteLength).toBeGreaterThan(500_000);
  });

  it("GET /v1/proto is the proto of the RPC surface; other methods are 405 in the JSON error shape", async () => {
    const res = await fetch(`${server.url}/v1/proto`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(readFileSync(`${REPO}proto/apikeys/v1/api_key_service.proto`, "utf8"));
    const post = await fetch(`${server.url}/v1/openapi.json`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe("method_not_allowed");
  });

  it("a key in the query string is still refused on these paths", async () => {
    const res = await fetch(`${server.url}/v1/openapi.json?api_key=x`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("key_in_url");
  });
});
