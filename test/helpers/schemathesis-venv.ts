import { existsSync } from "node:fs";
import { schemathesisVenvDir } from "./provision.js";

/**
 * The venv with Schemathesis and openapi-spec-validator (pinned in
 * test/schemathesis/requirements.txt), which the suite's global setup provisions (provision.ts).
 */
export async function schemathesisVenv(): Promise<string> {
  const dir = schemathesisVenvDir();
  if (!existsSync(`${dir}/bin/schemathesis`)) throw new Error(`no Schemathesis in ${dir}: the global setup (test/helpers/provision.ts) should have made it`);
  return dir;
}
