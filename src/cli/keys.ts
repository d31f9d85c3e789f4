import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createHandlerContext, ConnectError } from "@connectrpc/connect";
import { ApiKeyService, IssueKeyRequestSchema, IssueKeyResponseSchema } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { createService } from "../app.js";
import { ConfigError, loadConfig } from "../config/config.js";
import { createLogger } from "../observability/logger.js";
import { presentFlattened } from "../transport/rest/present.js";

const USAGE = `usage: npm run keys -- issue --customer <uuid> --name <name>
         [--scopes a,b] [--instance <uuid>] [--expires-at <iso 8601>] [--environment live|test]

Issues a key on the store the server uses (DATA_DIR, or MONGODB_URI) and prints the key object
with its secret as JSON on stdout. The secret is shown this once.`;

/**
 * `npm run keys -- issue …`: the first key for a customer. The CLI is one more transport over the
 * same service implementation: it calls IssueKey as an internal caller named `cli` (a one-off
 * in-process credential), so every rule and the audit event are exactly the server's.
 */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      customer: { type: "string" },
      name: { type: "string" },
      scopes: { type: "string" },
      instance: { type: "string" },
      "expires-at": { type: "string" },
      environment: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || positionals[0] !== "issue" || positionals.length !== 1) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (!values.customer || !values.name) throw new UsageError("--customer and --name are required");
  let expiresAt;
  if (values["expires-at"] !== undefined) {
    const ms = Date.parse(values["expires-at"]);
    if (Number.isNaN(ms)) throw new UsageError("--expires-at must be an ISO 8601 time");
    expiresAt = timestampFromMs(ms);
  }

  const token = randomBytes(24).toString("base64url");
  const config = { ...loadConfig(), INTERNAL_TOKEN: token };
  const log = createLogger(config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL);
  const { impl, domain, store } = await createService(config, log);
  try {
    const ctx = createHandlerContext({
      service: ApiKeyService,
      method: ApiKeyService.method.issueKey,
      protocolName: "cli",
      requestMethod: "POST",
      url: "cli:issue",
      requestHeader: { authorization: `Bearer ${token}`, "x-caller": "cli", "user-agent": "zpk-keys-cli" },
    });
    const request = create(IssueKeyRequestSchema, {
      customerId: values.customer,
      name: values.name,
      instanceId: values.instance ?? "",
      scopes: values.scopes ? values.scopes.split(",").map((s) => s.trim()).filter(Boolean) : [],
      environment: values.environment ?? "",
      expiresAt,
    });
    const response = create(IssueKeyResponseSchema, await impl.issueKey(request, ctx));
    process.stdout.write(`${JSON.stringify(presentFlattened(IssueKeyResponseSchema, response, "key"), null, 2)}\n`);
    return 0;
  } finally {
    await domain.flush();
    await store.close();
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
    process.stderr.write(`zpk keys: ${message}\n`);
    if (err instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(err instanceof UsageError || err instanceof ConfigError ? 2 : 1);
  },
);
