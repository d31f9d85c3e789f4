import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { INTERNAL, unitService } from "../helpers/unit-service.js";

/**
 * What every call of the ServiceImpl gets around it (instrument-calls.ts, call-context.ts), the
 * same on every transport: a request id echoed or made, never a key-shaped one; the id on errors
 * too; a storage outage as UNAVAILABLE with a message that names no driver.
 */
describe("every call", () => {
  it("echoes a sane x-request-id, makes one when none is sent, and never echoes a key-shaped one", async () => {
    const s = unitService();
    const customer = randomUUID();
    // A key whose random part holds "_" and "-" (base64url), so the check cannot rely on [A-Za-z0-9].
    let secret = "";
    while (!/_/.test(secret.slice(9, 52)) || !/-/.test(secret.slice(9, 52))) secret = (await s.issue(customer)).secret;
    const echoed = await s.call("listKeys", { customerId: customer }, INTERNAL, { "x-request-id": "trace-42" });
    expect(echoed.headers.get("x-request-id")).toBe("trace-42");
    const made = await s.call("listKeys", { customerId: customer }, INTERNAL);
    expect(made.headers.get("x-request-id")).toMatch(/^req_[0-9a-f-]{36}$/);
    for (const shaped of [secret, secret.slice(9), `x-${secret.slice(9)}-y`]) {
      const r = await s.call("listKeys", { customerId: customer }, INTERNAL, { "x-request-id": shaped });
      expect(r.headers.get("x-request-id")).toMatch(/^req_/);
    }
    await s.call("issueKey", { customerId: customer, name: "x" }, INTERNAL, { "x-request-id": secret.slice(9) });
    expect(JSON.stringify(s.store.auditEvents())).not.toContain(secret.slice(9));
  });

  it("an error carries the request id, and a storage outage is UNAVAILABLE without driver details", async () => {
    const s = unitService();
    const customer = randomUUID();
    const bad = await s.failure("getKey", { customerId: customer, id: "nope" }, INTERNAL, { "x-request-id": "r-1" });
    expect(bad.code).toBe(Code.NotFound);
    expect(bad.metadata.get("x-request-id")).toBe("r-1");
    s.store.failing = true;
    const down = await s.failure("listKeys", { customerId: customer }, INTERNAL);
    expect(down.code).toBe(Code.Unavailable);
    expect(down.rawMessage).not.toMatch(/sqlite|mongo|Error:|at /i);
  });
});
