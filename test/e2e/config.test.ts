import { describe, expect, it } from "vitest";
import { runToExit } from "../helpers/run-process.js";
import { tempDir } from "../helpers/server.js";

/** SPEC §9: configuration is validated at start with one clear line naming the variable. */
const startWith = (env: Record<string, string>) =>
  runToExit(
    process.execPath,
    ["--import", "tsx", "src/main.ts"],
    {
      HOST: "127.0.0.1",
      PORT: "0",
      GRPC_PORT: "0",
      DATA_DIR: tempDir(),
      INTERNAL_TOKEN: "test-internal-token-0123456789",
      ...env,
    },
    60_000,
  );

// Each case is a separate process that exits at once; run them side by side. Under a load of ~20
// on 2 cores, four cold starts side by side took over 20 s each.
describe.concurrent("configuration validation", { timeout: 90_000 }, () => {
  it.each([
    ["PORT", "abc"],
    ["RATE_LIMIT_CAPACITY", "-1"],
    ["BODY_LIMIT_BYTES", "lots"],
  ])("%s=%s makes the server exit with code 2 and one stderr line naming the variable", async (name, value) => {
    const r = await startWith({ [name]: value });
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(lines[0]).toContain(value);
    expect(lines[0]).not.toMatch(/\n\s+at |node_modules/);
    expect(r.stdout).not.toContain('"msg":"ready"');
  });

  it("a short INTERNAL_TOKEN is refused without echoing its value", async () => {
    const r = await startWith({ INTERNAL_TOKEN: "short-secret" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("INTERNAL_TOKEN");
    expect(r.stderr).not.toContain("short-secret");
  });
});
