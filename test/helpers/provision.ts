import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ferretDbBinary } from "./ferretdb-process.js";

/**
 * Every tool the suite needs, provisioned by the suite itself (the global setup runs
 * `provision()`), so `npm install` + `npm test` are the whole set-up on a fresh machine.
 *
 * A step is a cheap `missing()` check (no install, no network: a file, a version stamp, a binary
 * on PATH) and an idempotent `install()`. When everything is present, provisioning prints nothing
 * and takes a few exec()s. A step whose install needs root (apt-get) on a machine where the suite
 * is not root, or where apt-get is absent, stops the suite with ONE line naming the command to run
 * (a ProvisionError).
 *
 * Adding a tool (later tracks): append to STEPS, e.g.
 *   aptStep({ name: "chromium", packages: ["chromium"], present: () => onPath("chromium") })
 *   aptStep({ name: "nginx", packages: ["nginx"], present: () => onPath("nginx") })
 *   venvStep({ name: "schemathesis", dir: join(CACHE, "schemathesis-venv"), requirements: "test/…/requirements.txt" })
 *   { name: "caddy", missing: () => (onPath("caddy") ? null : "not on PATH"), install: () => run("bash", ["scripts/install-caddy.sh"]), manual: "bash scripts/install-caddy.sh" }
 * A test then finds the tool where the step put it (the same env variable / path).
 */
export interface ProvisionStep {
  name: string;
  /** Why the tool is missing (or out of date), or null when present. Must be cheap. */
  missing(): string | null;
  /** Installs it (idempotent); throws ProvisionError when it cannot. */
  install(ctx: ProvisionContext): void;
  /** The command a person runs to install it by hand. */
  manual: string;
}

export interface ProvisionContext {
  /** Whether apt-get may be run (root and apt-get on PATH). */
  canApt: boolean;
}

/** The one line the suite stops with. */
export class ProvisionError extends Error {}

export const REPO = new URL("../..", import.meta.url).pathname;
export const CACHE = join(homedir(), ".cache", "zpk");

export function onPath(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v "$1"`, "sh", bin], { stdio: "ignore" }).status === 0;
}

/** Runs a command with its output shown (installs are the only noisy part). */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const r = spawnSync(cmd, args, { cwd: REPO, stdio: ["ignore", "inherit", "inherit"], env });
  if (r.status !== 0) throw new ProvisionError(`\`${[cmd, ...args].join(" ")}\` failed (exit ${r.status ?? r.signal})`);
}

/** Debian packages: installed with apt-get when the suite runs as root, else the one-line stop. */
export function aptStep(o: { name: string; packages: string[]; present: () => boolean }): ProvisionStep {
  const manual = `sudo apt-get install -y ${o.packages.join(" ")}`;
  return {
    name: o.name,
    manual,
    missing: () => (o.present() ? null : "not installed"),
    install(ctx) {
      if (!ctx.canApt) throw new ProvisionError(`${o.name} is missing and the tests cannot install it (needs root and apt-get): run \`${manual}\``);
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      run("apt-get", ["update", "-qq"], env);
      run("apt-get", ["install", "-y", "-qq", ...o.packages], env);
    },
  };
}

/** A Python venv with pinned requirements, re-made when Python or the requirements change. */
export function venvStep(o: { name: string; dir: () => string; requirements: string }): ProvisionStep {
  const stamp = () => `${pythonVersion()} ${sha16(join(REPO, o.requirements))}`;
  return {
    name: o.name,
    manual: `python3 -m venv ${o.dir()} && ${o.dir()}/bin/pip install -r ${o.requirements}`,
    missing() {
      const dir = o.dir();
      if (!existsSync(join(dir, "bin/python3"))) return `no venv at ${dir}`;
      return readStamp(dir) === stamp() ? null : `venv ${dir} is out of date`;
    },
    install() {
      run("bash", ["-c", 'rm -rf "$1" && python3 -m venv "$1" && "$1/bin/python3" -m pip install -q -r "$2" && printf "%s\\n" "$3" > "$1/.zpk-stamp"', "venv", o.dir(), o.requirements, stamp()], {
        ...process.env,
        PIP_DISABLE_PIP_VERSION_CHECK: "1",
        PIP_NO_INPUT: "1",
      });
    },
  };
}

const readStamp = (dir: string) => {
  try {
    return readFileSync(join(dir, ".zpk-stamp"), "utf8").trim();
  } catch {
    return "";
  }
};
const sha16 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex").slice(0, 16);
let python: string | undefined;
const pythonVersion = () => (python ??= execFileSync("python3", ["-c", "import sys; print(sys.version.split()[0])"], { encoding: "utf8" }).trim());

// ---------------------------------------------------------------- the suite's tools

/** Where the Python client's venv lives (clients-other-languages.test.ts reads the same variable). */
export const clientVenv = () => process.env.ZPK_CLIENT_VENV ?? join(CACHE, "client-venv");

const CLIENT_SCRIPT = "scripts/install-client-tools.sh";
/** The plugin versions the install script pins (read from it: one source). */
const pinned = (name: string) => new RegExp(`^${name}=(\\S+)$`, "m").exec(readFileSync(join(REPO, CLIENT_SCRIPT), "utf8"))?.[1] ?? "?";
const goBin = () => {
  const [gobin = "", gopath = ""] = execFileSync("go", ["env", "GOBIN", "GOPATH"], { encoding: "utf8" }).split("\n").map((s) => s.trim());
  return gobin || join(gopath, "bin");
};
const pluginVersion = (bin: string) => {
  try {
    return execFileSync(bin, ["--version"], { encoding: "utf8" }).trim().split(/\s+/).pop()?.replace(/^v/, "");
  } catch {
    return undefined;
  }
};

/** protoc-gen-go, protoc-gen-go-grpc and the Python client venv: scripts/install-client-tools.sh. */
const clientTools: ProvisionStep = {
  name: "client tools (Go plugins, Python venv)",
  manual: `bash ${CLIENT_SCRIPT}`,
  missing() {
    if (!onPath("go")) return "go is not on PATH";
    const dir = goBin();
    for (const [bin, pin] of [["protoc-gen-go", "PROTOC_GEN_GO_VERSION"], ["protoc-gen-go-grpc", "PROTOC_GEN_GO_GRPC_VERSION"]] as const) {
      if (pluginVersion(join(dir, bin)) !== pinned(pin).replace(/^v/, "")) return `${bin} ${pinned(pin)} is missing`;
    }
    return venvStep({ name: "client venv", dir: clientVenv, requirements: "test/clients/python/requirements.txt" }).missing();
  },
  install() {
    if (!onPath("go") || !onPath("python3")) throw new ProvisionError(`Go and Python 3 are needed for the client tools: install them, then run \`bash ${CLIENT_SCRIPT}\``);
    run("bash", [CLIENT_SCRIPT]);
  },
};

/** FerretDB, built from the Go module proxy (scripts/install-ferretdb.sh). */
const ferretDb: ProvisionStep = {
  name: "FerretDB",
  manual: "bash scripts/install-ferretdb.sh",
  missing: () => (process.env.TEST_MONGODB_URI || existsSync(process.env.FERRETDB_BIN ?? join(CACHE, "ferretdb-v1.24.2")) ? null : "not built"),
  install: () => void ferretDbBinary(),
};

/** Where Schemathesis and openapi-spec-validator live (test/helpers/schemathesis-venv.ts reads it). */
export const schemathesisVenvDir = () => process.env.ZPK_SCHEMATHESIS_VENV ?? join(CACHE, "schemathesis-venv");

/** What `npm test` provisions, in order. Later tracks append their tools here. */
export const STEPS: ProvisionStep[] = [
  ferretDb,
  clientTools,
  aptStep({ name: "nginx", packages: ["nginx"], present: () => onPath("nginx") || existsSync("/usr/sbin/nginx") }),
  aptStep({ name: "caddy", packages: ["caddy"], present: () => onPath("caddy") }),
  venvStep({ name: "Schemathesis venv", dir: schemathesisVenvDir, requirements: "test/schemathesis/requirements.txt" }),
];

/**
 * Checks each step and installs what is missing. Returns the names installed. Throws
 * ProvisionError (one line) when a tool is missing and cannot be installed here.
 */
export function provision(steps: ProvisionStep[] = STEPS, ctx: ProvisionContext = { canApt: process.getuid?.() === 0 && onPath("apt-get") }): string[] {
  const installed: string[] = [];
  for (const step of steps) {
    const why = step.missing();
    if (why === null) continue;
    console.error(`[provision] ${step.name}: ${why}; installing (\`${step.manual}\`)`);
    try {
      step.install(ctx);
    } catch (e) {
      if (e instanceof ProvisionError) throw e;
      // A Debian package whose postinst cannot start its service (no init here) still installs
      // the binary the tests need: the check below decides.
      if (step.missing() === null) { installed.push(step.name); continue; }
      throw new ProvisionError(`${step.name} could not be installed (${(e as Error).message.split("\n")[0]}): run \`${step.manual}\``);
    }
    const still = step.missing();
    if (still !== null) throw new ProvisionError(`${step.name} is still missing after installing (${still}): run \`${step.manual}\``);
    installed.push(step.name);
  }
  return installed;
}
