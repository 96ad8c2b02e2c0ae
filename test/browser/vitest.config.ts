import { defineConfig } from "vitest/config";

// Headless Debian Chromium (playwright-core) against `wrangler dev` serving the built SPA.
export default defineConfig({
  test: {
    root: "test/browser",
    include: ["**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
