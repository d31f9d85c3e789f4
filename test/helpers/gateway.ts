import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import { REPO, type RunningServer } from "./server.js";

/** Helpers of the gateway tests (issue 15): ports, keys, the echo upstream, tools. */

/** The forward-auth port the server reported in its ready line. */
export function authzPortOf(server: RunningServer): number {
  const line = server.output().split("\n").find((l) => l.includes('"msg":"ready"'));
  const port = line ? (JSON.parse(line) as { authzPort?: number }).authzPort : undefined;
  if (!port) throw new Error(`the server reported no authzPort in its ready line:\n${server.output()}`);
  return port;
}

/** Calls one ApiKeyService RPC over Connect JSON on PORT with the internal credential. */
export async function internalRpc<T = any>(server: RunningServer, method: string, body: unknown): Promise<T> {
  const res = await fetch(`${server.url}/apikeys.v1.ApiKeyService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${server.internalToken}` },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

export interface IssuedKey {
  id: string;
  secret: string;
  prefix: string;
  customerId: string;
}

export async function issueKey(server: RunningServer, customerId: string, fields: Record<string, unknown> = {}): Promise<IssuedKey> {
  const res = await internalRpc<{ key: { id: string; prefix: string }; secret: string }>(server, "IssueKey", { customerId, name: "gateway-test", ...fields });
  return { id: res.key.id, prefix: res.key.prefix, secret: res.secret, customerId };
}

export const revokeKey = (server: RunningServer, key: IssuedKey) => internalRpc(server, "RevokeKey", { customerId: key.customerId, id: key.id });

/** A small upstream that answers every request with the headers it received, as JSON. */
export async function startEchoUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One clear line when a proxy the tests run is missing: what to install. */
export function requireTool(name: string, path: string): void {
  if (!existsSync(path)) {
    throw new Error(`${name} is not installed (${path} missing): run \`apt-get install -y nginx caddy\` (CI's .ci/run does)`);
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCommand(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs} ms]`;
      child.kill("SIGKILL");
    }, opts.timeoutMs);
    child.once("error", (err) => {
      stderr += String(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

const ENVOY_GO_DIR = join(REPO, "test/clients/envoy-go");

/**
 * Builds the Go ext_authz client (test/clients/envoy-go, go-control-plane's types) once per
 * source version into ~/.cache/zpk (a fresh machine downloads its modules first: minutes).
 */
export async function buildEnvoyGoClient(): Promise<string> {
  const hash = createHash("sha256");
  for (const f of ["main.go", "go.mod", "go.sum"]) hash.update(readFileSync(join(ENVOY_GO_DIR, f)));
  const dir = join(process.env.ZPK_CACHE_DIR ?? join(homedir(), ".cache/zpk"), "envoy-go");
  const bin = join(dir, `envoy-go-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const env = { ...process.env, GOTELEMETRY: "off", GOFLAGS: "-mod=mod" };
  const r = await runCommand("go", ["build", "-o", bin, "."], { cwd: ENVOY_GO_DIR, env, timeoutMs: 540_000 });
  if (r.code !== 0) throw new Error(`go build (test/clients/envoy-go) failed; Go 1.24+ and the Go module proxy are needed:\n${r.stdout}\n${r.stderr}`);
  return bin;
}
