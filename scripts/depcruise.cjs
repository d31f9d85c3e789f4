/**
 * Import directions (`npm run check:deps`, run by .ci/run after the type check). Data flows one
 * way: transports -> service -> domain <- storage (the Store port is src/domain/store.ts and the
 * stores implement it). Type-only imports count too (tsPreCompilationDeps).
 */
const LAYERS_ABOVE_DOMAIN = "^src/(storage|transport|service|observability|config|cli)/|^src/(app|main|cluster)\\.ts$|^gen/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "domain-imports-no-outer-layer",
      comment: "The domain knows no store, transport, service, metrics, configuration or generated protobuf code.",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { path: LAYERS_ABOVE_DOMAIN },
    },
    {
      name: "domain-imports-no-wire-or-driver-package",
      comment: "No protobuf, RPC framework or database driver in the domain: stores and the service translate.",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { dependencyTypes: ["npm"], path: "node_modules/(@bufbuild|@connectrpc|@grpc|grpc-health-check|mongodb|better-sqlite3|prom-client)/" },
    },
    {
      name: "storage-imports-no-transport-or-service",
      comment: "A store implements the domain's Store port and knows nothing above it.",
      severity: "error",
      from: { path: "^src/storage/" },
      to: { path: "^src/(transport|service|observability|cli)/|^src/(app|main|cluster)\\.ts$|^gen/" },
    },
    {
      name: "transport-imports-no-storage",
      comment: "Transports get what they need as functions (ready()), never a store or the Store port.",
      severity: "error",
      from: { path: "^src/transport/" },
      to: { path: "^src/storage/|^src/domain/store\\.ts$" },
    },
    {
      name: "service-imports-no-storage",
      comment: "The service calls the domain; only the composition root (app.ts) opens a store.",
      severity: "error",
      from: { path: "^src/service/" },
      to: { path: "^src/storage/|^src/domain/store\\.ts$" },
    },
    {
      name: "no-circular",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "^(test|bench)/" },
  },
};
