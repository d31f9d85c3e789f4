import { afterAll, describe, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { auditTrail, expectError, issueWith } from "../helpers/rest-support.js";
import { type RunningServer, startServer, tempDir } from "../helpers/server.js";

/** SPEC §8, §9: restarting loses nothing; SIGTERM drains and flushes buffered writes. */
const running: RunningServer[] = [];
afterAll(async () => {
  for (const s of running) await s.stop();
});

async function start(env: Record<string, string>) {
  const s = await startServer(env);
  running.push(s);
  return s;
}

describe("restart", () => {
  it("after SIGTERM (exit 0) a new server on the same DATA_DIR has the keys, the revocation, the audit trail and the usage counters, and keeps issuing", async () => {
    const dataDir = tempDir();
    // Usage and failure events are only flushed by the shutdown itself, not by a timer.
    const env = { DATA_DIR: dataDir, USAGE_FLUSH_INTERVAL_MS: "60000", AUDIT_FLUSH_INTERVAL_MS: "1000" };
    const first = await start(env);
    const customerId = uuid();
    const root = await issueAsInternal(first, customerId, { name: "root" });
    const kept = await issueWith(first, root.secret, { name: "kept", metadata: { a: "b" }, scopes: ["api_keys:read"] });
    const gone = await issueWith(first, root.secret, { name: "gone" });
    await rest(first, "PATCH", `/v1/api-keys/${kept.id}`, { key: root.secret, body: { name: "kept-renamed" } });
    expect((await rest(first, "DELETE", `/v1/api-keys/${gone.id}`, { key: root.secret })).status).toBe(204);
    for (let i = 0; i < 4; i++) expect((await rest(first, "GET", "/v1/api-keys", { key: kept.secret })).status).toBe(200);
    // a failure with a known key, buffered for up to a second, right before the shutdown
    expect((await rest(first, "GET", "/v1/api-keys", { key: gone.secret })).status).toBe(401);

    const asInternal = (s: RunningServer, path: string) =>
      rest(s, "GET", `${path}${path.includes("?") ? "&" : "?"}customer_id=${customerId}`, { key: s.internalToken });
    const keysBefore = (await asInternal(first, "/v1/api-keys?include_inactive=true")).body.data;
    const keptBefore = (await asInternal(first, `/v1/api-keys/${kept.id}`)).body;
    expect(keptBefore.total_requests).toBe(4);
    expect(keptBefore.last_used_at).not.toBeNull();

    expect(await first.stop()).toBe(0);

    const second = await start({ DATA_DIR: dataDir });
    const keysAfter = (await asInternal(second, "/v1/api-keys?include_inactive=true")).body.data;
    expect(keysAfter).toEqual(keysBefore);

    const keptAfter = (await asInternal(second, `/v1/api-keys/${kept.id}`)).body;
    expect(keptAfter.name).toBe("kept-renamed");
    expect(keptAfter.metadata).toEqual({ a: "b" });
    expect(keptAfter.scopes).toEqual(["api_keys:read"]);
    expect(keptAfter.total_requests).toBe(4);
    expect(keptAfter.last_used_at).toBe(keptBefore.last_used_at);

    const goneAfter = (await asInternal(second, `/v1/api-keys/${gone.id}`)).body;
    expect(goneAfter.revoked_at).not.toBeNull();
    expect(goneAfter.is_active).toBe(false);

    // the keys still work (or stay revoked) on the new process
    expect((await rest(second, "GET", "/v1/api-keys", { key: kept.secret })).status).toBe(200);
    expectError(await rest(second, "GET", "/v1/api-keys", { key: gone.secret }), 401, ["key_revoked", "unauthenticated"]);

    const trail = await auditTrail(second, customerId);
    const summary = trail.map((e) => `${e.action}:${e.target?.key_id}`);
    expect(summary).toContain(`api_key.issued:${root.id}`);
    expect(summary).toContain(`api_key.issued:${kept.id}`);
    expect(summary).toContain(`api_key.issued:${gone.id}`);
    expect(summary).toContain(`api_key.updated:${kept.id}`);
    expect(summary.filter((s) => s === `api_key.revoked:${gone.id}`)).toHaveLength(1);
    expect(summary, "the auth.failed buffered at shutdown was lost").toContain(`auth.failed:${gone.id}`);

    // new keys on the restarted server list before the old ones (ids keep sorting by time)
    const fresh = await issueWith(second, root.secret, { name: "fresh" });
    const listed = await rest(second, "GET", "/v1/api-keys", { key: root.secret });
    expect(listed.body.data.map((k: any) => k.id)).toEqual([fresh.id, kept.id, root.id]);
  });
});
