/**
 * `npm run generate` (after `buf generate`): writes docs/openapi.json, the OpenAPI 3.1 document of
 * the REST shape, from the descriptors in gen/ (what the server runs) and the comments of a
 * `buf build` image of proto/ (gen/ carries no comments). `--check` compares instead of writing
 * (scripts/check-gen.sh runs it in CI). The server serves the checked-in file at /v1/openapi.json.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { openApiDocument } from "../src/transport/openapi/openapi-document.js";
import { protoComments } from "../src/transport/openapi/proto-comments.js";

const root = new URL("..", import.meta.url).pathname;
const target = `${root}docs/openapi.json`;
const image = execFileSync("npx", ["--no-install", "buf", "build", "-o", "-#format=binpb"], {
  cwd: root,
  maxBuffer: 64 * 1024 * 1024,
  env: { ...process.env, BUF_DISABLE_TELEMETRY: "1" },
});
const version = (JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { version: string }).version;
const text = `${JSON.stringify(openApiDocument({ comments: protoComments(image), version }), null, 2)}\n`;

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current !== text) {
    process.stderr.write("docs/openapi.json is out of date: run 'npm run generate' and commit the result\n");
    process.exit(1);
  }
  process.stdout.write("docs/openapi.json matches the proto\n");
} else {
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target}\n`);
}
