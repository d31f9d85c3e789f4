import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, type RunningServer, startServer, tempDir } from "../helpers/server.js";

/**
 * The clients in other languages (issue 4): a Go program (grpc-go) and a Python script (grpcio),
 * each generated from proto/ by `buf generate` with local plugins, sharing no code with the server.
 * Each one issues a key with the internal credential, authenticates it, checks the MALFORMED (bad
 * checksum) and MISSING_SCOPE denials, charges the bucket until it is refused, revokes the key and
 * sees REVOKED. They run against a real server's PORT (connect-node's gRPC) and GRPC_PORT (grpc-js).
 *
 * The tools come from `bash scripts/install-client-tools.sh` (protoc-gen-go, protoc-gen-go-grpc and
 * a Python venv with grpcio/grpcio-tools); this test says so when they are missing.
 */

const GO_DIR = join(REPO, "test/clients/go");
const PY_DIR = join(REPO, "test/clients/python");
const VENV = process.env.ZPK_CLIENT_VENV ?? join(homedir(), ".cache/zpk/client-venv");
const VENV_PYTHON = join(VENV, "bin/python3");
const BUF = join(REPO, "node_modules/.bin/buf");
const INSTALL_HINT = "run `bash scripts/install-client-tools.sh` first";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion (never throws): exit code, output and wall time. */
function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs} ms]`;
      child.kill("SIGKILL");
    }, opts.timeoutMs);
    const done = (code: number | null) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    };
    child.once("error", (err) => {
      stderr += String(err);
      done(null);
    });
    child.once("close", done);
  });
}

function describeRun(what: string, r: Result): string {
  return `${what}: exit ${r.code} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** The env for the tools: Go's bin dir (plugins) and the client venv's bin dir (python3) on PATH. */
async function toolEnv(): Promise<NodeJS.ProcessEnv> {
  const base: NodeJS.ProcessEnv = { ...process.env, GOTELEMETRY: "off", DO_NOT_TRACK: "1", BUF_DISABLE_TELEMETRY: "1" };
  const gopath = await run("go", ["env", "GOBIN", "GOPATH"], { cwd: REPO, env: base, timeoutMs: 30_000 });
  if (gopath.code !== 0) throw new Error(describeRun(`go is needed (${INSTALL_HINT})`, gopath));
  const [gobin = "", goPath = ""] = gopath.stdout.split("\n").map((s) => s.trim());
  const goBinDir = gobin || join(goPath, "bin");
  return { ...base, PATH: [join(VENV, "bin"), goBinDir, base.PATH ?? ""].join(delimiter) };
}

let server: RunningServer;
let env: NodeJS.ProcessEnv;
let goClient: string;
const timings: string[] = [];

/** The server's gRPC endpoints: PORT always, GRPC_PORT when the server reports one (else skipped). */
const ENDPOINTS = [
  { name: "PORT (connect-node)", port: () => server.port },
  { name: "GRPC_PORT (grpc-js)", port: () => server.grpcPort },
];

beforeAll(async () => {
  for (const [path, what] of [
    [VENV_PYTHON, "the Python client venv"],
    [BUF, "buf (npm ci)"],
  ] as const) {
    if (!existsSync(path)) throw new Error(`${what} is missing at ${path}: ${INSTALL_HINT}`);
  }
  env = await toolEnv();

  // A fresh server with the default bucket (capacity 60) but a refill so slow (one token per 100 s)
  // that no token comes back while a client charges: the clients expect exactly 60 allowed, and a
  // ChargeRateLimit is a storage write of a few ms, so at the default 1/s a loaded machine could see
  // a 61st token refilled mid-loop.
  server = await startServer({ RATE_LIMIT_REFILL_PER_SEC: "0.01" });

  // Generate both clients (in parallel), then build the Go one.
  const [goGen, pyGen] = await Promise.all(
    ["test/clients/go/buf.gen.yaml", "test/clients/python/buf.gen.yaml"].map((template) =>
      run(BUF, ["generate", "--template", template], { cwd: REPO, env, timeoutMs: 120_000 }),
    ),
  );
  if (goGen!.code !== 0) throw new Error(describeRun(`buf generate (Go; ${INSTALL_HINT})`, goGen!));
  if (pyGen!.code !== 0) throw new Error(describeRun(`buf generate (Python; ${INSTALL_HINT})`, pyGen!));
  timings.push(`buf generate: go ${goGen!.ms} ms, python ${pyGen!.ms} ms`);

  goClient = join(tempDir("zpk-go-client-"), "zpk-go-client");
  // First build on a fresh machine downloads modules (unless the installer did) and compiles grpc-go.
  const build = await run("go", ["build", "-o", goClient, "."], { cwd: GO_DIR, env, timeoutMs: 540_000 });
  if (build.code !== 0) throw new Error(describeRun("go build (test/clients/go)", build));
  timings.push(`go build: ${build.ms} ms`);
}, 600_000);

afterAll(async () => {
  if (timings.length) console.log(`clients in other languages: ${timings.join("; ")}`);
  await server?.stop();
});

const EXPECTED_LINES = [
  /^ok +IssueKey +customer=/m,
  /^ok +Authenticate +valid=true /m,
  /^ok +Authenticate\(bad checksum\) +valid=false reason=DENIAL_REASON_MALFORMED$/m,
  /^ok +Authenticate\(required_scopes=\[write\]\) +valid=false reason=DENIAL_REASON_MISSING_SCOPE$/m,
  /^ok +ChargeRateLimit +60 allowed, then allowed=false limit=60 remaining=0 retry_after_seconds=\d+ /m,
  /^ok +RevokeKey +id=key_/m,
  /^ok +Authenticate\(revoked\) +valid=false reason=DENIAL_REASON_REVOKED$/m,
];

function expectFlow(r: Result, what: string, lastLine: string) {
  const report = describeRun(what, r);
  expect(r.code, report).toBe(0);
  for (const line of EXPECTED_LINES) expect(r.stdout, report).toMatch(line);
  expect(r.stdout.trimEnd().split("\n").at(-1), report).toBe(lastLine);
  // The refusal's retry-after: at least one second.
  const retry = /retry_after_seconds=(\d+)/.exec(r.stdout);
  expect(Number(retry?.[1]), report).toBeGreaterThanOrEqual(1);
}

describe("clients in other languages, generated by buf from proto/", () => {
  describe("Go (grpc-go)", () => {
    for (const ep of ENDPOINTS) {
      it(`runs the whole flow on ${ep.name}`, async ({ skip }) => {
        const port = ep.port();
        if (port === null) return skip("the server reports no GRPC_PORT");
        const addr = `127.0.0.1:${port}`;
        const r = await run(goClient, ["-addr", addr, "-token", server.internalToken], {
          cwd: GO_DIR,
          env,
          timeoutMs: 60_000,
        });
        timings.push(`go client on ${ep.name}: ${r.ms} ms`);
        expectFlow(r, `go client on ${ep.name}`, "go client: all checks passed");
        expect(r.stdout).toContain(`go client: gRPC to ${addr}`);
      }, 90_000);
    }
  });

  describe("Python (grpcio)", () => {
    for (const ep of ENDPOINTS) {
      it(`runs the whole flow on ${ep.name}`, async ({ skip }) => {
        const port = ep.port();
        if (port === null) return skip("the server reports no GRPC_PORT");
        const addr = `127.0.0.1:${port}`;
        const r = await run(VENV_PYTHON, [join(PY_DIR, "client.py"), "--addr", addr, "--token", server.internalToken], {
          cwd: PY_DIR,
          env,
          timeoutMs: 60_000,
        });
        timings.push(`python client on ${ep.name}: ${r.ms} ms`);
        expectFlow(r, `python client on ${ep.name}`, "python client: all checks passed");
        expect(r.stdout).toContain(`python client: gRPC to ${addr}`);
      }, 90_000);
    }
  });

  it("a wrong internal token is refused (UNAUTHENTICATED), in both languages", async () => {
    const addr = `127.0.0.1:${server.grpcPort ?? server.port}`;
    const wrong = "not-the-internal-token-0000";
    const go = await run(goClient, ["-addr", addr, "-token", wrong], { cwd: GO_DIR, env, timeoutMs: 60_000 });
    expect(go.code, describeRun("go client, wrong token", go)).toBe(1);
    expect(go.stderr).toMatch(/^FAIL IssueKey: Unauthenticated: /m);
    const py = await run(VENV_PYTHON, [join(PY_DIR, "client.py"), "--addr", addr, "--token", wrong], {
      cwd: PY_DIR,
      env,
      timeoutMs: 60_000,
    });
    expect(py.code, describeRun("python client, wrong token", py)).toBe(1);
    expect(py.stderr).toMatch(/^FAIL IssueKeyRequest: UNAUTHENTICATED: /m);
  }, 90_000);
});
