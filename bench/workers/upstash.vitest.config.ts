import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { freePort } from "../../test/upstash/rest-endpoint.mjs";
import RowsWrittenReporter from "./rows-reporter.ts";

// The index backends benchmark (bench/workers/upstash-index.bench.test.ts; how to run it is at the
// top of that file): the Worker runs with the Upstash backend on, through the local REST endpoint
// (test/upstash/global-setup.ts starts it and redis-server on the port chosen here).
process.env.STEMTRACE_UPSTASH_PORT ??= String(await freePort());
process.env.ROWS_OUT ??= "bench/results/upstash-index.json";
const knobs = Object.fromEntries(
  ["UPSTASH_BENCH_TRACES", "UPSTASH_BENCH_SECONDS", "UPSTASH_BENCH_TASKS_PER_S", "UPSTASH_BENCH_WORKLOAD_S"]
    .filter((k) => process.env[k] !== undefined)
    .map((k) => [k, process.env[k]!]),
);
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      miniflare: {
        bindings: {
          AUTH_MODE: "none",
          UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${process.env.STEMTRACE_UPSTASH_PORT}`,
          UPSTASH_REDIS_REST_TOKEN: "contract-suite-token",
          ...knobs,
        },
      },
    }),
  ],
  test: {
    root: "bench/workers",
    include: ["upstash-index.bench.test.ts"],
    globalSetup: ["../../test/upstash/global-setup.ts"],
    testTimeout: 1_800_000,
    reporters: ["default", new RowsWrittenReporter()],
  },
});
