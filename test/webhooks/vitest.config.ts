import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { WEBHOOK_TEST_SECRET } from "./global-setup";

// The webhooks suite: the real wrangler.toml bindings inside workerd, with WEBHOOK_URLS pointing at
// a receiver on loopback that global-setup.ts starts (its address comes through `inject`). Apart
// from test/workers so that only this suite sends webhooks. `TRACE_SHARDS=0` runs it against the
// per-trace layout, as in test/workers.
const layout =
  process.env.TRACE_SHARDS === undefined
    ? {}
    : {
        TRACE_SHARDS: process.env.TRACE_SHARDS,
        ...(process.env.TRACE_SHARDS === "0" ? { FLUSH_INTERVAL_S: "0" } : {}),
      };
export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "../../wrangler.toml" },
      miniflare: {
        bindings: {
          AUTH_MODE: "none",
          // The path and query stand for a token in the URL: the log and the UI show the host only.
          WEBHOOK_URLS: `${inject("webhookReceiver")}/hook?token=url-token-123, not a url`,
          WEBHOOK_SECRET: WEBHOOK_TEST_SECRET,
          WEBHOOK_EVENTS: "anomaly.opened,anomaly.resolved,trace.failed",
          ...layout,
        },
      },
    })),
  ],
  test: {
    root: "test/webhooks",
    include: ["**/*.test.ts"],
    globalSetup: ["./global-setup.ts"],
    testTimeout: 30_000,
  },
});
