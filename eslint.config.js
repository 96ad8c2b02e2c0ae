// ESLint (flat config): typescript-eslint's recommended rules everywhere, React's hooks rules in
// the SPA. `npm run lint` runs it with prettier --check and ruff; `npm test` runs `npm run lint`.
import tseslint from "typescript-eslint";
import reactHooks from "eslint-plugin-react-hooks";

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      "**/dist/**",
      "**/.wrangler/**",
      "test-output/**",
      "bench/results/**",
      "python/**",
      "worker-configuration.d.ts",
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      // `_name` marks a deliberately unused binding (a destructured field left out, an unused parameter).
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrors: "none",
          destructuredArrayIgnorePattern: "^_",
        },
      ],
      // this.sql`...` runs a statement: a tagged template used for its effect.
      "@typescript-eslint/no-unused-expressions": [
        "error",
        { allowTaggedTemplates: true, allowShortCircuit: true },
      ],
    },
  },
  {
    files: ["web/src/**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks },
    rules: { ...reactHooks.configs.recommended.rules },
  },
);
