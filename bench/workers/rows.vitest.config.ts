import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import RowsWrittenReporter from "./rows-reporter.ts";

// The rows-written benchmark inside workerd (bench/workers/rows-written.bench.test.ts; how to run it
// is at the top of that file). Real wrangler.toml bindings; its reporter writes ROWS_OUT.
// Workload knobs come from the environment (see the test file) and reach workerd as one binding.
const params = {
  rates: (process.env.ROWS_RATES ?? "200,20").split(",").filter(Boolean).map(Number),
  seconds: Number(process.env.ROWS_SECONDS ?? 10),
  workflows: Number(process.env.ROWS_WORKFLOWS ?? 40),
  workflow_seconds: Number(process.env.ROWS_WORKFLOW_SECONDS ?? 10),
  settle_s: Number(process.env.ROWS_SETTLE_S ?? 5),
};

// storageStats() counts since the object started, and workerd evicts an object after 10 s idle
// (production: 70-140 s), which would lose its counts: every Durable Object binding of
// wrangler.toml is kept as it is, but not evicted.
const wranglerToml = new URL("../../wrangler.toml", import.meta.url).pathname;
const durableObjects = (unstable_getMiniflareWorkerOptions(wranglerToml).workerOptions.durableObjects ??
  {}) as Record<string, string | { className: string }>;
const keptAlive = Object.fromEntries(
  Object.entries(durableObjects).map(([binding, designator]) => [
    binding,
    {
      ...(typeof designator === "string" ? { className: designator } : designator),
      unsafePreventEviction: true,
    },
  ]),
);

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      miniflare: {
        bindings: {
          AUTH_MODE: "none",
          ROWS_BENCH_PARAMS: JSON.stringify(params),
          // The trace-shard count and flush interval, only when set (else wrangler.toml's).
          ...(process.env.TRACE_SHARDS !== undefined ? { TRACE_SHARDS: process.env.TRACE_SHARDS } : {}),
          ...(process.env.FLUSH_INTERVAL_S !== undefined
            ? { FLUSH_INTERVAL_S: process.env.FLUSH_INTERVAL_S }
            : {}),
        },
        durableObjects: keptAlive,
      },
    }),
  ],
  test: {
    root: "bench/workers",
    include: ["rows-written.bench.test.ts"],
    testTimeout: 1_800_000,
    reporters: ["default", new RowsWrittenReporter()],
  },
});
