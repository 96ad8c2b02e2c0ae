import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Runs inside workerd with the real wrangler.toml bindings (TraceGraph, Fleet, TraceIndex).
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      miniflare: { bindings: { AUTH_MODE: "none" } },
    }),
  ],
  test: {
    root: "test/workers",
    include: ["**/*.test.ts"],
    testTimeout: 30_000,
  },
});
