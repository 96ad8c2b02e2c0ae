import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Benchmarks inside workerd (`npm run bench:graph`); results are printed and written by the bench itself.
export default defineConfig({
  plugins: [cloudflareTest({ wrangler: { configPath: "../../wrangler.toml" }, miniflare: { bindings: { AUTH_MODE: "none" } } })],
  test: { root: "bench/workers", include: ["**/*.bench.test.ts"], testTimeout: 600_000 },
});
