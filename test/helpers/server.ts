import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The real server process, started the way `npm start` starts it, on free loopback ports. */
export interface RunningServer {
  /** `http://127.0.0.1:<PORT>` */
  url: string;
  port: number;
  /** The native gRPC port (grpc-js), when the server reported one. */
  grpcPort: number | null;
  /** The Prometheus /metrics port. */
  metricsPort: number | null;
  dataDir: string;
  internalToken: string;
  env: Record<string, string>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM and wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  process: ChildProcess;
}

export const REPO = new URL("../..", import.meta.url).pathname;
export const INTERNAL_TOKEN = "test-internal-token-0123456789";

export function tempDir(prefix = "zpk-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Starts `node --import tsx src/main.ts` with PORT=0 (and GRPC_PORT=0) and waits until it logs the
 * ports it listens on. Extra env overrides the defaults (e.g. a small rate limit).
 */
export async function startServer(env: Record<string, string> = {}): Promise<RunningServer> {
  const dataDir = env.DATA_DIR ?? tempDir();
  const fullEnv: Record<string, string> = {
    HOST: "127.0.0.1",
    PORT: "0",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    AUTHZ_PORT: "0",
    DATA_DIR: dataDir,
    INTERNAL_TOKEN,
    LOG_LEVEL: "debug",
    USAGE_FLUSH_INTERVAL_MS: "100",
    AUDIT_FLUSH_INTERVAL_MS: "50",
    AUDIT_AGGREGATE_INTERVAL_MS: "200",
    WORKERS: "1",
    ...env,
  };
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...fullEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const ports = await new Promise<{ port: number; grpcPort: number | null; metricsPort: number | null }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in time:\n${out}`)), 30_000);
    const check = () => {
      const line = out.split("\n").find((l) => l.includes('"msg":"ready"'));
      if (!line) return;
      clearTimeout(timer);
      const ready = JSON.parse(line) as { port: number; grpcPort?: number; metricsPort?: number };
      resolve({ port: ready.port, grpcPort: ready.grpcPort ?? null, metricsPort: ready.metricsPort ?? null });
    };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready:\n${out}`));
    });
  });

  return {
    url: `http://127.0.0.1:${ports.port}`,
    port: ports.port,
    grpcPort: ports.grpcPort,
    metricsPort: ports.metricsPort,
    dataDir,
    internalToken: fullEnv.INTERNAL_TOKEN ?? "",
    env: fullEnv,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
    process: child,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
