import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    mongoUri: string;
    mongoServer: string;
  }
}

const FERRETDB_VERSION = "v1.24.2";
const REPO = new URL("../..", import.meta.url).pathname;

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
  const bin = process.env.FERRETDB_BIN ?? join(homedir(), ".cache", "zpk", `ferretdb-${FERRETDB_VERSION}`);
  if (!existsSync(bin)) {
    execFileSync("bash", [join(REPO, "scripts/install-ferretdb.sh")], { stdio: "inherit", env: { ...process.env, FERRETDB_BIN: bin } });
  }
  const dataDir = mkdtempSync(join(tmpdir(), "zpk-ferretdb-"));
  const port = await freePort();
  const child: ChildProcess = spawn(
    bin,
    [
      "--handler=sqlite",
      `--sqlite-url=file:${dataDir}/`,
      `--listen-addr=127.0.0.1:${port}`,
      "--telemetry=disable",
      "--state-dir=-",
      "--debug-addr=-",
      "--log-level=error",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  await waitForPort(port, () => stderr);
  project.provide("mongoUri", `mongodb://127.0.0.1:${port}/`);
  project.provide("mongoServer", `ferretdb ${FERRETDB_VERSION}`);
  return async () => {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dataDir, { recursive: true, force: true });
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, output: () => string): Promise<void> {
  const { connect } = await import("node:net");
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, "127.0.0.1", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`FerretDB did not start on port ${port}:\n${output()}`);
}
