import { describe, expect, test } from "vitest";
import { runToExit } from "../helpers/run-process.js";

/**
 * CI tells a run that tested something from one that did not by its closing line
 * (test/helpers/closing-line-reporter.ts). Real vitest runs over fixture files, each asserted on
 * the line it ends with and its exit code.
 */
const vitest = (filter: string[]) =>
  runToExit(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "--config", "test/fixtures/closing-line/vitest.config.ts", ...filter], { CI: "true" }, 60_000);

const lastLine = (out: string) => out.trim().split("\n").at(-1);

describe("the test run's closing line", () => {
  test("a green run ends with its count of passed tests and 0 failed, and exits 0", async () => {
    const r = await vitest(["passing"]);
    expect(lastLine(r.stdout)).toBe("vitest: 2 passed, 0 failed, 0 skipped");
    expect(r.code).toBe(0);
  });

  test("a failing test and a module that fails to load each count as failed; skipped tests are counted; the run exits 1", async () => {
    const r = await vitest([]);
    expect(lastLine(r.stdout)).toBe("vitest: 3 passed, 2 failed, 1 skipped");
    expect(r.code).toBe(1);
  });
});
