import type { TestProject } from "vitest/node";
import { startFerretDb } from "./ferretdb-process.js";
import { ProvisionError, provision } from "./provision.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongoUri: string;
    mongoServer: string;
  }
}

/**
 * First the suite's tools are provisioned (provision.ts). Then one MongoDB-compatible server for the whole suite. With TEST_MONGODB_URI set, that server (a
 * real MongoDB) is used. Otherwise FerretDB (SQLite backend, telemetry off) is started on a free
 * loopback port with a fresh data directory; it is built once by scripts/install-ferretdb.sh if
 * missing (needs Go). Tests get the URI with `inject("mongoUri")` and use a database of their own.
 */
export default async function setup(project: TestProject) {
  // Every tool the suite needs (test/helpers/provision.ts): a check when present, else installed.
  try {
    provision();
  } catch (e) {
    if (!(e instanceof ProvisionError)) throw e;
    process.stderr.write(`zpk tests: ${e.message}\n`);
    process.exit(1);
  }
  if (process.env.TEST_MONGODB_URI) {
    project.provide("mongoUri", process.env.TEST_MONGODB_URI);
    project.provide("mongoServer", "mongodb (TEST_MONGODB_URI)");
    return;
  }
  const ferret = await startFerretDb();
  project.provide("mongoUri", ferret.uri);
  project.provide("mongoServer", "ferretdb v1.24.2");
  return () => ferret.dispose();
}
