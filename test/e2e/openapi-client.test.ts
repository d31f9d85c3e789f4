import { mkdirSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { keysCli, runToExit } from "../helpers/run-process.js";
import { REPO, type RunningServer, startServer } from "../helpers/server.js";

/**
 * Issue 16: a client generated from docs/openapi.json (openapi-typescript types + openapi-fetch)
 * compiles with `tsc --strict` and runs the README walk-through against a real server
 * (test/clients/typescript/walkthrough.ts).
 */
const DIR = `${REPO}test/clients/typescript`;
let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

it("openapi-typescript types compile and the README walk-through runs on them", async () => {
  mkdirSync(`${DIR}/generated`, { recursive: true });
  const gen = await runToExit("npx", ["--no-install", "openapi-typescript", "docs/openapi.json", "-o", `${DIR}/generated/openapi.ts`], { REDOCLY_TELEMETRY: "off" }, 60_000);
  expect(gen.code, gen.stdout + gen.stderr).toBe(0);
  const tsc = await runToExit("npx", ["--no-install", "tsc", "-p", `${DIR}/tsconfig.json`], {}, 120_000);
  expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);

  const customer = "6f1c2d3e-0000-4000-8000-000000000001";
  const cli = await keysCli(["issue", "--customer", customer, "--name", "bootstrap"], { DATA_DIR: server.dataDir });
  expect(cli.code, cli.stderr).toBe(0);
  const { secret } = JSON.parse(cli.stdout) as { secret: string };
  const run = await runToExit("node", ["--import", "tsx", `${DIR}/walkthrough.ts`], { ZPK_URL: server.url, ZPK_KEY: secret }, 60_000);
  expect(run.code, run.stdout + run.stderr).toBe(0);
  expect(JSON.parse(run.stdout.trim().split("\n").at(-1)!)).toMatchObject({ ok: true });
}, 240_000);
