import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Runs inside workerd with the real wrangler.toml bindings (TraceGraph, Fleet, TraceIndex).
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      // A per-name running timeout for the anomaly tests; everything else keeps wrangler.toml's defaults.
      miniflare: { bindings: { AUTH_MODE: "none", STUCK_STARTED_BY_NAME: '{"app.quick-limit": 5}' } },
    }),
  ],
  test: {
    root: "test/workers",
    include: ["**/*.test.ts"],
    testTimeout: 30_000,
  },
});
