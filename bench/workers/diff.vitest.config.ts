import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import RowsWrittenReporter from "./rows-reporter.ts";

// The run-diff benchmark inside workerd (bench/workers/diff.bench.test.ts). The rows-written
// reporter only collects the `BENCH {json}` lines: here it writes them to bench/results/diff.json.
process.env.ROWS_OUT ??= "bench/results/diff.json";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      miniflare: { bindings: { AUTH_MODE: "none" } },
    }),
  ],
  test: {
    root: "bench/workers",
    include: ["diff.bench.test.ts"],
    testTimeout: 1_800_000,
    reporters: ["default", new RowsWrittenReporter()],
  },
});
