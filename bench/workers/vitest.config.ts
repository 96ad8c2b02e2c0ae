import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import BenchResultsReporter from "./results-reporter";

// Benchmarks inside workerd (`npm run bench:graph`); the reporter writes bench/results/graph.json and ingest.md.
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../../wrangler.toml" },
      miniflare: { bindings: { AUTH_MODE: "none" } },
    }),
  ],
  test: {
    root: "bench/workers",
    include: ["**/*.bench.test.ts"],
    testTimeout: 1_800_000,
    reporters: ["default", new BenchResultsReporter()],
  },
});
