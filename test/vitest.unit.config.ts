import { defineConfig } from "vitest/config";
import ClosingLineReporter from "./helpers/closing-line-reporter.js";

/**
 * The fast layer: domain and service rules over the in-memory store, no child processes and no
 * FerretDB (hence no global setup). `npm run test:unit`; the full suite (test/vitest.config.ts)
 * runs these files too.
 */
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["test/unit/**/*.test.ts", "test/storage/memory-store.test.ts"],
    testTimeout: 10_000,
    reporters: ["default", new ClosingLineReporter()],
  },
});
