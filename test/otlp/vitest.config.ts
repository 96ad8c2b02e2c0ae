import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// The OpenTelemetry export, end to end inside workerd: the shards POST to a real OTLP/HTTP JSON
// receiver on loopback (receiver.ts, a globalSetup in Node). A suite of its own so that the other
// workers tests run with the export off (its default). Exports never fall due by themselves here
// (settle period and backoff of an hour): the tests make them due and run the alarm, no sleeps.
// Both trace layouts, as the workers suite: TRACE_SHARDS=0 runs one object per trace.
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
          OTLP_ENDPOINT: `http://127.0.0.1:${inject("otlpPort")}/v1/traces`,
          OTLP_HEADERS: "authorization=Bearer%20otlp-test, x-scope-orgid = stemtrace-tests",
          OTLP_SERVICE_NAME: "celery-e2e",
          OTLP_SETTLE_S: "3600",
          OTLP_RETRY_BASE_S: "3600",
          OTLP_MAX_ATTEMPTS: "4",
          ...layout,
        },
      },
    })),
  ],
  test: {
    root: "test/otlp",
    include: ["**/*.test.ts"],
    globalSetup: ["./receiver.ts"],
    testTimeout: 30_000,
  },
});
