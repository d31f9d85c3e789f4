import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, tcpOpen } from "./loopback.js";

/**
 * A FerretDB process of a test's own (SQLite backend, telemetry off, loopback only), for tests
 * that must kill and restart the database: the suite-wide server of mongo-global-setup.ts is
 * shared and must never be touched. `kill()` is SIGKILL (a crash or a lost network path from the
 * service's point of view); `start()` brings it back on the same port and data directory.
 */
export interface FerretDbProcess {
  uri: string;
  port: number;
  dataDir: string;
  /** (Re)starts the process on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Kills it if running and removes the data directory. */
  dispose(): Promise<void>;
  running(): boolean;
  output(): string;
}

const FERRETDB_VERSION = "v1.24.2";
const REPO = new URL("../..", import.meta.url).pathname;

export function ferretDbBinary(): string {
  const bin = process.env.FERRETDB_BIN ?? join(homedir(), ".cache", "zpk", `ferretdb-${FERRETDB_VERSION}`);
  if (!existsSync(bin)) {
    execFileSync("bash", [join(REPO, "scripts/install-ferretdb.sh")], { stdio: "inherit", env: { ...process.env, FERRETDB_BIN: bin } });
  }
  return bin;
}

export async function startFerretDb(): Promise<FerretDbProcess> {
  const bin = ferretDbBinary();
  const dataDir = mkdtempSync(join(tmpdir(), "zpk-ferretdb-own-"));
  const port = await freePort();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = "";

  const handle: FerretDbProcess = {
    uri: `mongodb://127.0.0.1:${port}/`,
    port,
    dataDir,
    async start() {
      if (handle.running()) return;
      const c = spawn(
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
      child = c;
      c.stderr!.on("data", (d: Buffer) => (out += d.toString()));
      exited = new Promise((resolve) => c.once("exit", () => resolve()));
      await waitForPort(port, () => out, () => c.exitCode !== null || c.signalCode !== null);
    },
    async kill() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      child = null;
    },
    async dispose() {
      await handle.kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
    running: () => child !== null && child.exitCode === null && child.signalCode === null,
    output: () => out,
  };
  await handle.start();
  return handle;
}

async function waitForPort(port: number, output: () => string, dead: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (dead()) throw new Error(`FerretDB exited before it listened on ${port}:\n${output()}`);
    const ok = await tcpOpen(port);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`FerretDB did not start on port ${port}:\n${output()}`);
}
