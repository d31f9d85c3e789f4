import type { TestProject } from "vitest/node";
import { startFerretDb } from "./ferretdb-process.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongoUri: string;
    mongoServer: string;
  }
}

/**
 * One MongoDB-compatible server for the whole suite. With TEST_MONGODB_URI set, that server (a
 * real MongoDB) is used. Otherwise FerretDB (SQLite backend, telemetry off) is started on a free
 * loopback port with a fresh data directory; it is built once by scripts/install-ferretdb.sh if
 * missing (needs Go). Tests get the URI with `inject("mongoUri")` and use a database of their own.
 */
export default async function setup(project: TestProject) {
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
