import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Runs inside workerd with the real wrangler.toml bindings (TraceGraph, Fleet, TraceIndex).
// Both trace layouts pass this suite: `TRACE_SHARDS=0` (one object per trace, every ingest flushed
// at once) runs it against the literal per-trace layout; unset, wrangler.toml's shards are used.
const layout =
  process.env.TRACE_SHARDS === undefined
    ? {}
    : {
        TRACE_SHARDS: process.env.TRACE_SHARDS,
        ...(process.env.TRACE_SHARDS === "0" ? { FLUSH_INTERVAL_S: "0" } : {}),
      };
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      // A per-name running timeout for the anomaly tests; everything else keeps wrangler.toml's defaults.
      miniflare: {
        bindings: { AUTH_MODE: "none", STUCK_STARTED_BY_NAME: '{"app.quick-limit": 5}', ...layout },
      },
    }),
  ],
  test: {
    root: "test/workers",
    include: ["**/*.test.ts"],
    testTimeout: 30_000,
  },
});
