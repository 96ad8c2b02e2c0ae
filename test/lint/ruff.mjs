// Lints the Python producer, its tests, the e2e suite, the recorder and the benchmarks with ruff
// (Astral's own WebAssembly build from npm: PyPI is not reachable from the machines this runs on).
// Settings: ruff's defaults (pyflakes F, pycodestyle E4/E7/E9) plus the `[tool.ruff]` line length
// of python/pyproject.toml. Prints one line per finding; exits 1 if there is any.
//   node test/lint/ruff.mjs [paths...]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PositionEncoding, Workspace } from "@astral-sh/ruff-wasm-nodejs";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const roots = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ["python", "test/e2e", "test/fixtures/recorder", "bench", "docs"];

function pythonFiles(path) {
  const full = resolve(ROOT, path);
  if (statSync(full).isFile()) return full.endsWith(".py") ? [full] : [];
  return readdirSync(full).flatMap((name) =>
    name === "__pycache__" || name === "node_modules" || name.startsWith(".")
      ? []
      : pythonFiles(join(full, name)),
  );
}

// The CLI's default rule set (the playground build enables many more when given nothing).
const settings = { "line-length": 200, lint: { select: ["E4", "E7", "E9", "F"] } };
const ws = new Workspace(settings, PositionEncoding.Utf16);
let findings = 0;
const files = roots.flatMap(pythonFiles);
for (const file of files) {
  for (const d of ws.check(readFileSync(file, "utf8"))) {
    findings++;
    console.log(
      `${relative(ROOT, file)}:${d.start_location.row}:${d.start_location.column}: ${d.code ?? "syntax"} ${d.message}`,
    );
  }
}
console.log(
  `ruff ${Workspace.version()}: ${files.length} files, ${findings} finding${findings === 1 ? "" : "s"}`,
);
process.exit(findings ? 1 : 0);
