/**
 * The deploy path (docs/deploy.md), as far as it goes without a Cloudflare account: `wrangler
 * deploy --dry-run` builds the bundle on a machine with no login and no account (a fresh HOME, no
 * CLOUDFLARE_* variables), and the Durable Object bindings and migrations in wrangler.toml match
 * the classes the Worker exports. A class bound without a migration, a migration for a class the
 * code no longer exports, or a key-value (non-SQLite) class is refused by the real deploy, after
 * the upload; this catches it before.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const NODE = join(ROOT, "node_modules/.bin/node");
const run = promisify(execFile);

/** An environment like a fresh CI machine's: no Cloudflare credentials, no wrangler login, no telemetry. */
function freshEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
  for (const key of Object.keys(env)) if (key.startsWith("CLOUDFLARE_")) delete env[key];
  env.WRANGLER_SEND_METRICS = "false";
  return env;
}

/** The names in a bundle's final `export { A, B as C, … }` (the exported name, after `as`). */
function bundleExports(code: string): string[] {
  const blocks = [...code.matchAll(/^export\s*\{([^}]*)\};?\s*$/gm)];
  const last = blocks[blocks.length - 1];
  if (!last) return [];
  return last[1]!
    .split(",")
    .map((part) =>
      part
        .trim()
        .split(/\s+as\s+/)
        .pop()!,
    )
    .filter(Boolean);
}

/** Durable Object classes that worker/index.ts re-exports from durable-objects/. */
function sourceObjectClasses(): string[] {
  const source = readFileSync(join(ROOT, "worker/index.ts"), "utf8");
  return [...source.matchAll(/^export\s*\{([^}]*)\}\s*from\s*"\.\.\/durable-objects\/[^"]+";/gm)].flatMap(
    (m) =>
      m[1]!
        .split(",")
        .map((name) => name.trim())
        .filter(Boolean),
  );
}

/** The parts of wrangler's resolved configuration this file reads. */
interface DeployConfig {
  durable_objects: { bindings: { name: string; class_name: string; script_name?: string }[] };
  migrations: {
    tag: string;
    new_classes?: string[];
    new_sqlite_classes?: string[];
    deleted_classes?: string[];
    renamed_classes?: { from: string; to: string }[];
  }[];
  assets?: { directory?: string; binding?: string; run_worker_first?: boolean | string[] };
}

// wrangler's own reader, so the file is understood exactly as `wrangler deploy` understands it.
const config: DeployConfig = unstable_readConfig(
  { config: join(ROOT, "wrangler.toml") },
  { hideWarnings: true },
);
const bound = config.durable_objects.bindings.map((b) => b.class_name);

describe("wrangler.toml against the code", () => {
  it("binds exactly the Durable Object classes the Worker exports", () => {
    expect(sourceObjectClasses().sort()).toEqual(["Fleet", "TraceGraph", "TraceIndex", "Webhooks"]);
    expect([...bound].sort()).toEqual(sourceObjectClasses().sort());
    expect(config.durable_objects.bindings.map((b) => b.name).sort()).toEqual([
      "FLEET",
      "INDEX",
      "TRACE_GRAPH",
      "WEBHOOKS",
    ]);
    // No binding points at another Worker's class: these objects live in this script.
    for (const b of config.durable_objects.bindings) expect(b.script_name).toBeUndefined();
  });

  it("creates every bound class as a SQLite class in a migration, and deletes or renames none", () => {
    const tags = config.migrations.map((m) => m.tag);
    expect(new Set(tags).size).toBe(tags.length);
    const sqlite = new Set<string>();
    for (const m of config.migrations) {
      // Key-value classes cannot use ctx.storage.sql, which every object here does.
      expect(m.new_classes ?? []).toEqual([]);
      for (const name of m.new_sqlite_classes ?? []) sqlite.add(name);
      for (const name of m.deleted_classes ?? []) sqlite.delete(name);
      for (const r of m.renamed_classes ?? []) {
        sqlite.delete(r.from);
        sqlite.add(r.to);
      }
    }
    expect([...sqlite].sort()).toEqual([...bound].sort());
  });

  it("serves the built UI as assets, with the API routed to the Worker first", () => {
    // `npm run build:web` writes web/dist (web/vite.config.ts); a relative path is the config file's.
    expect(resolve(ROOT, config.assets?.directory ?? "")).toBe(join(ROOT, "web/dist"));
    expect(config.assets?.binding).toBe("ASSETS");
    expect(config.assets?.run_worker_first).toEqual(["/api/*", "/v1/*"]);
  });
});

describe("wrangler deploy --dry-run on a machine without an account", () => {
  let tmp = "";
  let output = "";

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "stemtrace-deploy-"));
    const env = freshEnv(join(tmp, "home"));
    // The UI is built into the temporary directory (not web/dist, which other suites read) and
    // handed to wrangler with --assets, the same build `npm run deploy` uploads.
    await run(
      NODE,
      [
        "node_modules/vite/bin/vite.js",
        "build",
        "--config",
        "web/vite.config.ts",
        "--outDir",
        join(tmp, "assets"),
        "--emptyOutDir",
        "--logLevel",
        "warn",
      ],
      { cwd: ROOT, env },
    );
    const result = await run(
      NODE,
      [
        "node_modules/wrangler/bin/wrangler.js",
        "deploy",
        "--dry-run",
        "--outdir",
        join(tmp, "out"),
        "--assets",
        join(tmp, "assets"),
      ],
      { cwd: ROOT, env: { ...env, NO_COLOR: "1", FORCE_COLOR: "0" }, maxBuffer: 16 << 20 },
    );
    output = result.stdout + result.stderr;
  }, 240_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("finishes the dry run and reads the UI build", () => {
    expect(output).toContain("--dry-run: exiting now.");
    expect(output).toMatch(/Read \d+ files? from the assets directory/);
    expect(existsSync(join(tmp, "assets/index.html"))).toBe(true);
    expect(existsSync(join(tmp, "assets/_headers"))).toBe(true);
  });

  it("writes a bundle that exports the Worker and every bound Durable Object class", () => {
    const bundle = join(tmp, "out/index.js");
    expect(existsSync(bundle)).toBe(true);
    expect(statSync(bundle).size).toBeGreaterThan(10_000);
    const exported = bundleExports(readFileSync(bundle, "utf8"));
    expect(exported).toContain("default");
    for (const name of bound) expect(exported).toContain(name);
  });

  it("lists the bindings the Worker reads", () => {
    for (const b of config.durable_objects.bindings)
      expect(output).toMatch(new RegExp(`env\\.${b.name} \\(${b.class_name}\\)\\s+Durable Object`));
    expect(output).toMatch(/env\.ASSETS\s+Assets/);
    expect(output).toMatch(/env\.TRACE_SHARDS \("16"\)/);
  });
});
