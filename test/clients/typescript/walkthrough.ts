/**
 * The README's curl walk-through, as a client generated from docs/openapi.json would run it:
 * `openapi-typescript` types (./generated/openapi.ts, written by test/e2e/openapi-client.test.ts)
 * and `openapi-fetch`. Type-checked with `tsc` before it runs, so a document that does not fit the
 * server's JSON fails either here (types) or at run time (the assertions). Prints one JSON line.
 * Env: ZPK_URL, ZPK_KEY (a bootstrap key of the customer).
 */
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/openapi.js";

type Key = components["schemas"]["Key"];

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`walk-through: ${what}`);
}

const baseUrl = process.env.ZPK_URL!;
const bootstrap = process.env.ZPK_KEY!;
const asBootstrap = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${bootstrap}` } });

// 2. List the customer's keys; every authenticated call carries the bucket's state.
const list = await asBootstrap.GET("/v1/api-keys", { params: { query: { page_size: 10 } } });
check(list.response.status === 200 && list.data, `list: ${list.response.status}`);
const firstPage: Key[] = list.data.data;
check(firstPage.length === 1 && list.data.next_page_token === null, "one key, no next page");
check(list.response.headers.get("x-ratelimit-limit") !== null, "X-RateLimit-Limit");

// 3. Issue a narrower key: read-only, tagged, expiring.
const issued = await asBootstrap.POST("/v1/api-keys", {
  body: { name: "reporting", scopes: ["api_keys:read"], metadata: { team: "bi" }, expires_at: "2030-01-01T00:00:00Z" },
});
check(issued.response.status === 201 && issued.data, `issue: ${issued.response.status}`);
const secret: string = issued.data.secret;
const id: string = issued.data.id;
check(issued.response.headers.get("location") === `/v1/api-keys/${id}`, "Location");
check(issued.data.expires_at === "2030-01-01T00:00:00.000Z" && issued.data.revoked_at === null, "timestamps");

// 4. Use it (X-API-Key), rename it, read the audit trail.
const asNew = createClient<paths>({ baseUrl, headers: { "X-API-Key": secret } });
const got = await asNew.GET("/v1/api-keys/{id}", { params: { path: { id } } });
check(got.response.status === 200 && got.data?.scopes.join() === "api_keys:read", `get: ${got.response.status}`);
const renamed = await asBootstrap.PATCH("/v1/api-keys/{id}", { params: { path: { id } }, body: { name: "bi-reporting" } });
check(renamed.data?.name === "bi-reporting" && renamed.data.metadata.team === "bi", "rename");
const audit = await asBootstrap.GET("/v1/audit-events", { params: { query: { action: "api_key.issued" } } });
check(audit.data?.data.some((e) => e.target?.key_id === id && e.actor?.type === "key"), "audit event of the issue");

// A narrower key cannot write: 403 in the error shape of the document.
const denied = await asNew.POST("/v1/api-keys", { body: { name: "escalation" } });
check(denied.response.status === 403 && denied.error?.error.code === "permission_denied", `escalation: ${denied.response.status}`);

// 5. Revoke it: 204, and it fails at once.
const revoked = await asBootstrap.DELETE("/v1/api-keys/{id}", { params: { path: { id } } });
check(revoked.response.status === 204, `revoke: ${revoked.response.status}`);
const after = await asNew.GET("/v1/api-keys");
check(after.response.status === 401 && after.error?.error.code === "key_revoked", `after revoke: ${after.response.status}`);

console.log(JSON.stringify({ ok: true, id, requestId: after.error.request_id }));
