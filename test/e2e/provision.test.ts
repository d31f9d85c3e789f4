import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { aptStep, provision, ProvisionError } from "../helpers/provision.js";
import { runToExit } from "../helpers/run-process.js";

/**
 * `npm test` provisions the tools it needs itself (test/helpers/provision.ts, called by the global
 * setup): a fresh machine needs only `npm install` and `npm test` (README, "Two commands").
 */
const venv = mkdtempSync(join(tmpdir(), "zpk-empty-venv-"));
afterAll(() => rmSync(venv, { recursive: true, force: true }));

/** provision() in a process of its own, as the global setup runs it. */
async function provisionIn(env: Record<string, string>) {
  const r = await runToExit(process.execPath, ["--import", "tsx", "-e", 'import("./test/helpers/provision.ts").then((m) => console.log(JSON.stringify(m.provision())))'], env, 580_000);
  return { ...r, installed: JSON.parse(r.stdout.trim().split("\n").pop() || "null") as string[] | null };
}

describe("the suite provisions its tools", () => {
  it("with everything present it only checks: nothing installed, nothing printed", async () => {
    const r = await provisionIn({});
    expect(r.code, r.stderr).toBe(0);
    expect(r.installed).toEqual([]);
    expect(r.stderr).toBe("");
  }, 60_000);

  it("an empty ZPK_CLIENT_VENV is provisioned (the Python client venv is made there), and a second run finds it", async () => {
    const first = await provisionIn({ ZPK_CLIENT_VENV: venv });
    expect(first.code, first.stderr).toBe(0);
    expect(first.installed).toEqual(["client tools (Go plugins, Python venv)"]);
    expect(existsSync(join(venv, "bin/python3"))).toBe(true);
    expect(readFileSync(join(venv, ".zpk-stamp"), "utf8")).toMatch(/^3\.\d+\.\d+ [0-9a-f]{16}\n$/);
    const py = await runToExit(join(venv, "bin/python3"), ["-c", "import grpc, grpc_tools.protoc, google.protobuf; print('ok')"], {}, 60_000);
    expect(py.stdout.trim()).toBe("ok");
    const second = await provisionIn({ ZPK_CLIENT_VENV: venv });
    expect(second.installed).toEqual([]);
    expect(second.stderr).toBe("");
  }, 600_000);

  it("a missing apt package where apt-get cannot run stops with one line naming the command", () => {
    const step = aptStep({ name: "zpk-test-tool", packages: ["zpk-test-tool"], present: () => false });
    let err: unknown;
    try {
      provision([step], { canApt: false });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProvisionError);
    expect((err as Error).message).not.toContain("\n");
    expect((err as Error).message).toContain("`sudo apt-get install -y zpk-test-tool`");
  });
});
