import { spawn } from "node:child_process";
import { REPO } from "./server.js";

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The minimal environment a child process of the tests gets, plus `env`. */
export const childEnv = (env: Record<string, string>) => ({ PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env });

/**
 * Runs a command in the repository to completion and collects its output; rejects (after killing
 * it) if it does not exit within `timeoutMs`.
 */
export function runToExit(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `npm run -s keys -- …` with the given store environment (DATA_DIR or MONGODB_URI). */
export const keysCli = (args: string[], env: Record<string, string>, timeoutMs = 40_000) =>
  runToExit("npm", ["run", "-s", "keys", "--", ...args], env, timeoutMs);
