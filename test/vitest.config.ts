import { defineConfig } from "vitest/config";
import ClosingLineReporter from "./helpers/closing-line-reporter.js";

export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/mongo-global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", new ClosingLineReporter()],
  },
});
