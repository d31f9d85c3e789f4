import type { ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { freePort, withFreshPorts } from "../../test/helpers/loopback.js";
import { killTree, removeDir, sleep, spawnTracked, tempDir } from "./proc.js";
import { REPO } from "./server.js";

/**
 * A real gRPC client for the bench's one-off correctness checks (h2load, which drives the rows,
 * cannot read gRPC status), and the bare grpc-js server of bench/lib/bare-grpc-server.ts.
 */

export interface RawAnswer {
  code: grpc.status;
  details: string;
  /** The response message's bytes (empty on an error). */
  bytes: Buffer;
}

/** One unary call with @grpc/grpc-js, bytes in and bytes out (no codec), with the given metadata. */
export function rawUnary(target: string, path: string, request: Uint8Array, metadata: Record<string, string> = {}): Promise<RawAnswer> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise<RawAnswer>((resolve) => {
    client.makeUnaryRequest<Buffer, Buffer>(
      path,
      (b) => b,
      (b) => b,
      Buffer.from(request),
      md,
      { deadline: Date.now() + 10_000 },
      (err, res) => {
        client.close();
        if (err) resolve({ code: err.code, details: err.details, bytes: Buffer.alloc(0) });
        else resolve({ code: grpc.status.OK, details: "", bytes: res ?? Buffer.alloc(0) });
      },
    );
  });
}

export interface BareServer {
  port: number;
  /** The bare HTTP/1.1 server's port (bench/lib/bare-http.ts). */
  httpPort: number;
  pid: number;
  workers: number;
  alive(): boolean;
  stop(): Promise<void>;
}

/** The bare server's minimal Authenticate (bench/lib/bare-grpc-server.ts): a name of its own, not our API. */
export const MINIMAL_PATH = "/bare.v1.Bare/MinimalAuthenticate";

export interface BareOptions {
  path: string;
  response: Uint8Array;
  workers: string;
  /** The minimal Authenticate's credential (`Bearer <token>`) and the digest of the one key it knows. */
  minimal: { authorization: string; keyDigest: string };
  /** The minimal list's page: the real server's GET /v1/api-keys body for the same key. */
  page: Uint8Array;
  /** The MongoDB pass: the minimal list does its round trip on the real server's database. */
  mongo?: { uri: string; db: string; customerId: string };
  nodeFlags: string[];
}

/**
 * Starts bench/lib/bare-grpc-server.ts (`workers` = "auto" → one per core, as WORKERS=auto), with
 * the bare HTTP/1.1 server of bench/lib/bare-http.ts on a second port.
 */
export function startBare(opts: BareOptions): Promise<BareServer> {
  return withFreshPorts(() => startBareOnce(opts));
}

async function startBareOnce(opts: BareOptions): Promise<BareServer> {
  const workers = opts.workers === "auto" ? availableParallelism() : Math.max(1, Number(opts.workers));
  const port = await freePort();
  const httpPort = await freePort();
  const dir = tempDir("zpk-bench-bare-");
  const child: ChildProcess = spawnTracked(process.execPath, [...opts.nodeFlags, "--import", "tsx", "bench/lib/bare-grpc-server.ts"], {
    cwd: REPO,
    env: {
      ...process.env,
      NODE_OPTIONS: undefined,
      BARE_PORT: String(port),
      BARE_PATH: opts.path,
      BARE_RESPONSE_HEX: Buffer.from(opts.response).toString("hex"),
      BARE_WORKERS: String(workers),
      BARE_MINIMAL_PATH: MINIMAL_PATH,
      BARE_AUTHORIZATION: opts.minimal.authorization,
      BARE_KEY_DIGEST: opts.minimal.keyDigest,
      BARE_HTTP_PORT: String(httpPort),
      BARE_PAGE_HEX: Buffer.from(opts.page).toString("hex"),
      BARE_DIR: dir,
      ...(opts.mongo ? { BARE_MONGODB_URI: opts.mongo.uri, BARE_MONGODB_DB: opts.mongo.db, BARE_CUSTOMER_ID: opts.mongo.customerId } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + 30_000;
  while ((out.match(/bare-grpc ready/g) ?? []).length < workers) {
    if (!alive()) {
      removeDir(dir);
      throw new Error(`the bare grpc-js server exited before it was ready:\n${out}`);
    }
    if (Date.now() > deadline) {
      killTree(child);
      throw new Error(`the bare grpc-js server was not ready in 30 s:\n${out}`);
    }
    await sleep(50);
  }
  return {
    port,
    httpPort,
    pid: child.pid!,
    workers,
    alive,
    async stop() {
      if (alive()) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => killTree(child), 10_000);
        await exited;
        clearTimeout(timer);
      }
      removeDir(dir);
    },
  };
}
