import { defineConfig } from "vitest/config";

// Plain Node tests: pure shared logic (fold, graph rules, property tests) and repo checks.
export default defineConfig({
  test: { root: "test/node", include: ["**/*.test.ts"], testTimeout: 60_000 },
});
