import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { issueAsInternal, rest, uuid } from "../helpers/rest.js";
import { connectClient, grpcJsClient, type RpcClient } from "../helpers/rpc-clients.js";
import { type RunningServer, startServer } from "../helpers/server.js";

/**
 * Issue 7, "Hostile input / Tenancy": 3 customers, each with an unbound key and keys bound to
 * each of its 2 instances (the callers), plus target keys. fast-check generates sequences of
 * list/get/patch/delete/issue/audit calls by random callers on random targets (any customer's,
 * any instance's, or made up), over REST, Connect and native gRPC; a model predicts each answer:
 * a key the caller may not see (another customer's, or another instance's for a bound caller) is
 * always 404 / NOT_FOUND, never touched; lists hold exactly the caller's visible keys; audit
 * lists only the caller's customer's events, and an instance-bound caller's only its instance's. Afterwards each owner reads everything back and
 * nothing of theirs was changed by anyone else.
 *
 * TENANCY_OPS (default 600) sets the number of calls; TENANCY_SEED replays a run.
 */

const OPS = Number(process.env.TENANCY_OPS ?? 600);
const SEED = Number(process.env.TENANCY_SEED ?? Date.now() % 2 ** 31);
const PER_RUN = 30;

interface ModelKey {
  id: string;
  customerId: string;
  instanceId: string | null;
  name: string;
  metadata: Record<string, string>;
  revoked: boolean;
  /** Who created or last changed it: its own customer's key ids, or "internal". */
  touchedBy: Set<string>;
}
interface Caller {
  label: string;
  secret: string;
  id: string;
  customerId: string;
  instanceId: string | null;
}

let server: RunningServer;
let rpc: { connect: RpcClient; grpc: RpcClient };
const customers: string[] = [uuid(), uuid(), uuid()];
const instances: Array<readonly [string, string]> = customers.map(() => [uuid(), uuid()] as const);
const keys = new Map<string, ModelKey>();
const callers: Caller[] = [];
let calls = 0;
const outcomes = new Map<string, number>();
const boundAuditForeignInstance: string[] = [];

const visible = (c: Caller, k: ModelKey) => k.customerId === c.customerId && (c.instanceId === null || k.instanceId === c.instanceId);
const bump = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

beforeAll(async () => {
  server = await startServer({ RATE_LIMIT_CAPACITY: "1000000", RATE_LIMIT_REFILL_PER_SEC: "1000000" });
  rpc = { connect: connectClient(server.url), grpc: grpcJsClient(`127.0.0.1:${server.grpcPort}`) };
  const add = async (customerId: string, instanceId: string | null, name: string, asCaller: boolean) => {
    const k = await issueAsInternal(server, customerId, { name, ...(instanceId && { instance_id: instanceId }), metadata: { owner: customerId.slice(0, 8) } });
    keys.set(k.id, { id: k.id, customerId, instanceId, name, metadata: { owner: customerId.slice(0, 8) }, revoked: false, touchedBy: new Set(["internal"]) });
    if (asCaller) callers.push({ label: `c${customers.indexOf(customerId)}${instanceId ? `/i${instances[customers.indexOf(customerId)]!.indexOf(instanceId)}` : ""}`, secret: k.secret, id: k.id, customerId, instanceId });
  };
  for (const [i, c] of customers.entries()) {
    const [i0, i1] = instances[i]!;
    await add(c, null, "unbound caller", true);
    await add(c, i0, "bound caller 0", true);
    await add(c, i1, "bound caller 1", true);
    for (const inst of [null, null, i0, i0, i1, i1]) await add(c, inst, "target", false);
  }
}, 60_000);

afterAll(async () => {
  rpc?.connect.close();
  rpc?.grpc.close();
  await server?.stop();
});

// ---------------------------------------------------------------- operations

const allInstances = () => [...instances.flat()];
const via = fc.constantFrom("rest", "rest", "connect", "grpc" as const);
const name = fc.oneof(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() !== "" && !/[\u0000-\u001f\u007f]/.test(s)), fc.constantFrom("renamed", "é🔑", "x"));
const metadata = fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3 });

const op = fc.oneof(
  fc.record({ kind: fc.constant("list" as const), caller: fc.nat(), via, includeInactive: fc.boolean(), instanceFilter: fc.option(fc.nat(), { nil: null, freq: 2 }) }),
  fc.record({ kind: fc.constant("get" as const), caller: fc.nat(), via, target: fc.nat(), own: fc.boolean(), madeUp: fc.boolean() }),
  fc.record({ kind: fc.constant("patch" as const), caller: fc.nat(), via, target: fc.nat(), own: fc.boolean(), name, metadata }),
  fc.record({ kind: fc.constant("delete" as const), caller: fc.nat(), via, target: fc.nat(), own: fc.boolean() }),
  fc.record({
    kind: fc.constant("issue" as const),
    caller: fc.nat(),
    via,
    name,
    instance: fc.oneof(fc.constant("none" as const), fc.constant("own" as const), fc.constant("foreign" as const), fc.constant("random" as const)),
    customerField: fc.constantFrom("none", "none", "own", "foreign" as const),
  }),
  fc.record({ kind: fc.constant("audit" as const), caller: fc.nat(), via, targetFilter: fc.option(fc.nat(), { nil: null }) }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** Keys that are not callers: the only ones a patch or delete may hit (callers must keep working). */
const targets = () => [...keys.values()].filter((k) => !callers.some((c) => c.id === k.id));

async function run(o: Op): Promise<void> {
  calls++;
  const caller = callers[o.caller % callers.length]!;
  const ctx = `${o.kind} by ${caller.label} via ${o.via}`;
  const auth = { authorization: `Bearer ${caller.secret}` };
  const client = o.via === "connect" ? rpc.connect : rpc.grpc;

  if (o.kind === "get" || o.kind === "patch" || o.kind === "delete") {
    // Half the time among the caller's own customer's keys (its other instance's included).
    const pool = (o.kind === "get" ? [...keys.values()] : targets()).filter((k) => !o.own || k.customerId === caller.customerId);
    const made = o.kind === "get" && o.madeUp && o.target % 4 === 0;
    const target = made ? null : pool[o.target % pool.length]!;
    const id = target?.id ?? `key_01JD3X5Q7R2M9T4V6W8Y0Z${String(o.target % 10_000).padStart(4, "0")}`;
    const may = target !== null && visible(caller, target);
    const what = `${ctx} on ${target ? `${target.customerId === caller.customerId ? "own" : "foreign"} key (instance ${target.instanceId ? "bound" : "none"})` : "made-up id"}`;
    let status: number;
    let key: any;
    if (o.via === "rest") {
      const res =
        o.kind === "get"
          ? await rest(server, "GET", `/v1/api-keys/${id}`, { key: caller.secret })
          : o.kind === "patch"
            ? await rest(server, "PATCH", `/v1/api-keys/${id}`, { key: caller.secret, body: { name: o.name, metadata: o.metadata } })
            : await rest(server, "DELETE", `/v1/api-keys/${id}`, { key: caller.secret });
      status = res.status;
      key = res.body;
      if (!may) expect(res.body?.error?.code, `${what}: ${JSON.stringify(res.body)}`).toBe("not_found");
    } else {
      const r =
        o.kind === "get"
          ? await client.call("getKey", { id }, auth)
          : o.kind === "patch"
            ? await client.call("updateKey", { id, name: o.name, metadata: o.metadata, updateMask: { paths: ["name", "metadata"] } }, auth)
            : await client.call("revokeKey", { id }, auth);
      status = r.ok ? (o.kind === "delete" ? 204 : 200) : ({ 5: 404, 7: 403, 3: 400 } as Record<number, number>)[r.code] ?? 500 + r.code;
      key = r.ok ? toRestShape((r.res as any).key) : { code: r.code, message: r.message };
    }
    bump(`${o.kind} ${may ? "visible" : "invisible"} -> ${status}`);
    if (!may) {
      expect(status, `${what} must be 404: ${JSON.stringify(key, replacer)}`).toBe(404);
      return;
    }
    if (o.kind === "patch" && target!.revoked && status !== 200) return; // changing a revoked key may be refused
    expect(status, `${what}: ${JSON.stringify(key, replacer)}`).toBe(o.kind === "delete" ? 204 : 200);
    if (o.kind === "patch") {
      target!.name = o.name;
      target!.metadata = o.metadata;
      target!.touchedBy.add(caller.id);
    }
    if (o.kind === "delete") {
      if (!target!.revoked) target!.touchedBy.add(caller.id);
      target!.revoked = true;
    }
    if (o.kind !== "delete") expectKey(key, target!, what);
    return;
  }

  if (o.kind === "issue") {
    const [own0, own1] = instances[customers.indexOf(caller.customerId)]!;
    const foreignInstances = allInstances().filter((i) => i !== own0 && i !== own1);
    const instanceId =
      o.instance === "none" ? null : o.instance === "own" ? (caller.instanceId ?? own0) : o.instance === "foreign" ? foreignInstances[calls % foreignInstances.length]! : uuid();
    const foreignCustomer = customers.find((c) => c !== caller.customerId)!;
    const customerId = o.customerField === "own" ? caller.customerId : o.customerField === "foreign" ? foreignCustomer : null;
    // A bound caller may only issue keys bound to its instance; customer_id is for internal callers (own is tolerated).
    const allowed = customerId !== foreignCustomer && (caller.instanceId === null || instanceId === caller.instanceId);
    let status: number;
    let key: any;
    if (o.via === "rest") {
      const res = await rest(server, "POST", "/v1/api-keys", {
        key: caller.secret,
        body: { name: o.name, ...(instanceId && { instance_id: instanceId }), ...(customerId && { customer_id: customerId }) },
      });
      status = res.status;
      key = res.body;
    } else {
      const r = await client.call("issueKey", { name: o.name, instanceId: instanceId ?? "", customerId: customerId ?? "" }, auth);
      status = r.ok ? 201 : ({ 5: 404, 7: 403, 3: 400 } as Record<number, number>)[r.code] ?? 500 + r.code;
      key = r.ok ? toRestShape((r.res as any).key) : { code: r.code, message: r.message };
    }
    bump(`issue ${allowed ? "allowed" : "refused"} -> ${status}`);
    const what = `${ctx} (instance ${o.instance}, customer_id ${o.customerField})`;
    if (!allowed) {
      expect(status, `${what}: ${JSON.stringify(key, replacer)}`).toBe(403);
      return;
    }
    expect(status, `${what}: ${JSON.stringify(key, replacer)}`).toBe(201);
    expect(key.customer_id, what).toBe(caller.customerId);
    expect(key.instance_id, what).toBe(instanceId);
    keys.set(key.id, { id: key.id, customerId: caller.customerId, instanceId, name: o.name, metadata: {}, revoked: false, touchedBy: new Set([caller.id]) });
    return;
  }

  if (o.kind === "list") {
    const all = allInstances();
    const filter = o.instanceFilter === null ? null : o.instanceFilter % (all.length + 1) === all.length ? uuid() : all[o.instanceFilter % (all.length + 1)]!;
    const got = await listAll(caller, o.via, o.includeInactive, filter);
    const expected = [...keys.values()]
      .filter((k) => visible(caller, k) && (o.includeInactive || !k.revoked) && (filter === null || k.instanceId === filter))
      .map((k) => k.id)
      .sort();
    bump(`list -> ${got.length} keys`);
    const what = `${ctx} (include_inactive ${o.includeInactive}, instance filter ${filter ? (all.includes(filter) ? `instance of c${Math.floor(all.indexOf(filter) / 2)}` : "random") : "none"})`;
    for (const k of got) {
      expect(k.customer_id, `${what}: another customer's key ${k.id}`).toBe(caller.customerId);
      if (caller.instanceId) expect(k.instance_id, `${what}: another instance's key ${k.id}`).toBe(caller.instanceId);
      const m = keys.get(k.id);
      expect(m, `${what}: a key the model does not know: ${k.id}`).toBeDefined();
      expectKey(k, m!, what);
    }
    expect(got.map((k) => k.id).sort(), what).toEqual(expected);
    return;
  }

  // audit
  const pool = [...keys.values()];
  const filterKey = o.targetFilter === null ? null : pool[o.targetFilter % pool.length]!;
  const events = await auditAll(caller, o.via, filterKey?.id ?? null);
  bump(`audit -> ${events.length} events`);
  const what = `${ctx} (target filter: ${filterKey ? (filterKey.customerId === caller.customerId ? "own key" : "foreign key") : "none"})`;
  for (const e of events) {
    expect(e.customer_id, `${what}: event of another customer ${JSON.stringify(e)}`).toBe(caller.customerId);
    for (const id of [e.target?.key_id, e.actor?.key_id]) {
      if (id && keys.has(id)) expect(keys.get(id)!.customerId, `${what}: event about another customer's key`).toBe(caller.customerId);
    }
    if (caller.instanceId && e.target?.key_id && keys.get(e.target.key_id)?.instanceId !== caller.instanceId) {
      boundAuditForeignInstance.push(`${caller.label} sees ${e.action} of a key ${keys.get(e.target.key_id)?.instanceId ? "of its customer's other instance" : "not bound to its instance"}`);
    }
  }
  if (filterKey && filterKey.customerId !== caller.customerId) expect(events, `${what}: events about a foreign key`).toEqual([]);
}

/** An RPC Key message in the REST shape (the fields this test compares). */
function toRestShape(k: any) {
  return k && { id: k.id, customer_id: k.customerId, instance_id: k.instanceId ?? null, name: k.name, metadata: { ...k.metadata }, revoked_at: k.revokedAt ? "set" : null };
}

function expectKey(got: any, m: ModelKey, what: string) {
  expect(got.id, what).toBe(m.id);
  expect(got.customer_id, what).toBe(m.customerId);
  expect(got.instance_id ?? null, what).toBe(m.instanceId);
  expect(got.name, `${what}: name of ${m.id}`).toBe(m.name);
  expect(got.metadata, `${what}: metadata of ${m.id}`).toEqual(m.metadata);
  expect(got.revoked_at !== null, `${what}: revoked state of ${m.id}`).toBe(m.revoked);
}

async function listAll(caller: Caller, how: string, includeInactive: boolean, instanceId: string | null): Promise<any[]> {
  const out: any[] = [];
  let token = "";
  for (let page = 0; page < 20; page++) {
    if (how === "rest") {
      const q = new URLSearchParams({ page_size: "100", include_inactive: String(includeInactive) });
      if (instanceId) q.set("instance_id", instanceId);
      if (token) q.set("page_token", token);
      const res = await rest(server, "GET", `/v1/api-keys?${q}`, { key: caller.secret });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      out.push(...res.body.data);
      token = res.body.next_page_token ?? "";
    } else {
      const client = how === "connect" ? rpc.connect : rpc.grpc;
      const r = await client.call("listKeys", { pageSize: 100, includeInactive, instanceId: instanceId ?? "", pageToken: token }, { authorization: `Bearer ${caller.secret}` });
      if (!r.ok) throw new Error(`ListKeys: ${r.code} ${r.message}`);
      out.push(...(r.res as any).data.map(toRestShape));
      token = (r.res as any).nextPageToken ?? "";
    }
    if (!token) break;
  }
  return out;
}

async function auditAll(caller: Caller, how: string, targetId: string | null): Promise<any[]> {
  const out: any[] = [];
  let token = "";
  for (let page = 0; page < 50; page++) {
    if (how === "rest") {
      const q = new URLSearchParams({ page_size: "100" });
      if (targetId) q.set("target_id", targetId);
      if (token) q.set("page_token", token);
      const res = await rest(server, "GET", `/v1/audit-events?${q}`, { key: caller.secret });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      out.push(...res.body.data);
      token = res.body.next_page_token ?? "";
    } else {
      const client = how === "connect" ? rpc.connect : rpc.grpc;
      const r = await client.call("listAuditEvents", { pageSize: 100, targetId: targetId ?? "", pageToken: token }, { authorization: `Bearer ${caller.secret}` });
      if (!r.ok) throw new Error(`ListAuditEvents: ${r.code} ${r.message}`);
      out.push(
        ...(r.res as any).data.map((e: any) => ({
          customer_id: e.customerId ?? null,
          action: e.action,
          actor: e.actor && { type: e.actor.type, key_id: e.actor.keyId ?? null },
          target: e.target && { key_id: e.target.keyId },
        })),
      );
      token = (r.res as any).nextPageToken ?? "";
    }
    if (!token) break;
  }
  return out;
}

// ---------------------------------------------------------------- the test

it("random callers on random targets never reach another tenant's (or instance's) data", async () => {
  expect(callers).toHaveLength(9);
  console.log(`[tenancy] seed=${SEED} (TENANCY_SEED=${SEED} replays), ${OPS} calls`);
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: PER_RUN, maxLength: PER_RUN }), async (ops) => {
      for (const o of ops) await run(o);
    }),
    { numRuns: Math.max(1, Math.ceil(OPS / PER_RUN)), seed: SEED, endOnFailure: true },
  );
  console.log(`[tenancy] ${calls} calls; outcomes: ${[...outcomes].sort().map(([k, v]) => `${k}: ${v}`).join(", ")}`);
}, 300_000);

it("afterwards each owner reads back exactly its model: nothing changed by anyone else", async () => {
  for (const [i, c] of customers.entries()) {
    const owner = callers.find((x) => x.customerId === c && x.instanceId === null)!;
    const got = await listAll(owner, "rest", true, null);
    const model = [...keys.values()].filter((k) => k.customerId === c);
    expect(got.map((k) => k.id).sort(), `customer c${i}`).toEqual(model.map((k) => k.id).sort());
    for (const k of got) expectKey(k, keys.get(k.id)!, `customer c${i} read-back`);
    // Every change in the trail was made by this customer's own keys (or the internal set-up).
    const ownIds = new Set(model.map((k) => k.id));
    const events = await auditAll(owner, "rest", null);
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      if (e.actor?.type === "key") expect(ownIds.has(e.actor.key_id), `c${i}: event ${e.action} by a foreign key ${e.actor.key_id}`).toBe(true);
      if (e.target?.key_id) expect(ownIds.has(e.target.key_id), `c${i}: event about a foreign key ${e.target.key_id}`).toBe(true);
    }
    for (const k of model) for (const by of k.touchedBy) if (by !== "internal") expect(ownIds.has(by), `c${i}: key ${k.id} changed by ${by}`).toBe(true);
  }
  // SPEC §7 (issue 12): an instance-bound reader reads only events about keys of its instance.
  const distinct = [...new Set(boundAuditForeignInstance)];
  expect(distinct, `instance-bound callers saw ${boundAuditForeignInstance.length} audit events about keys outside their instance`).toEqual([]);
}, 120_000);
