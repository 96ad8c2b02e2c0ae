import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { freePort } from "./rest-endpoint.mjs";

// The index contract suite: every query against the Durable Object index and the Upstash index
// (through the local REST endpoint in front of a real redis-server, started by global-setup.ts).
// The port is chosen here so the Worker's bindings can name it; global-setup.ts serves on it.
process.env.STEMTRACE_UPSTASH_PORT ??= String(await freePort());
const url = `http://127.0.0.1:${process.env.STEMTRACE_UPSTASH_PORT}`;
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
      miniflare: {
        bindings: {
          AUTH_MODE: "none",
          UPSTASH_REDIS_REST_URL: url,
          UPSTASH_REDIS_REST_TOKEN: "contract-suite-token",
          ...layout,
        },
      },
    }),
  ],
  test: {
    root: "test/upstash",
    include: ["**/*.test.ts"],
    globalSetup: ["./global-setup.ts"],
    testTimeout: 60_000,
    // The outage test stops redis-server: no other file may run meanwhile.
    fileParallelism: false,
  },
});
