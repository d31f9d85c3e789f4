import { runToExit } from "./run-process.js";

/**
 * The venv with Schemathesis and openapi-spec-validator (scripts/install-schemathesis.sh: pinned,
 * idempotent, a no-op when already installed). Called from the beforeAll of the tests that use it
 * and from .ci/run, until the tools are provisioned by the test global setup.
 */
export async function schemathesisVenv(): Promise<string> {
  const r = await runToExit("bash", ["scripts/install-schemathesis.sh"], { PIP_DISABLE_PIP_VERSION_CHECK: "1" }, 300_000);
  if (r.code !== 0) throw new Error(`scripts/install-schemathesis.sh failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim().split("\n").at(-1)!;
}
