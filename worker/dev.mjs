#!/usr/bin/env node
/**
 * `npm start` / `npm run dev`: builds the web UI, then runs `wrangler dev` on 127.0.0.1.
 *
 *   PORT=18921 npm start          npm start -- --port 18921          npm run dev -- --port=18921
 *
 * The port comes from `--port` (or `--port=`), else `PORT`, else 8787; every other argument goes to
 * `wrangler dev` unchanged (`--persist-to`, `--var`, `--ip`, `--log-level`, …). `--no-build` skips the
 * UI build (web/dist is already current). Not part of the Worker: wrangler.toml's `main` is
 * worker/index.ts, which never imports this file. Runs on the Node that started it (Node 20 is
 * enough: `npm start` runs it before the pinned Node 22 exists); the tools run on node_modules/.bin/node.
 *
 * Quiet by default: the successful `POST /v1/events` lines (one per producer batch, mostly heartbeats)
 * are left out of wrangler's request log (`--log-ingest` or STEMTRACE_LOG_INGEST=1 keeps them; a
 * refused batch is always shown), and `wrangler dev` is told not to reach the network for
 * optional things (metrics, the `request.cf` sample, which prints a stack trace when offline).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const NODE = join(ROOT, "node_modules/.bin/node");
const DEFAULT_PORT = 8787;

/** argv → { port, build, logIngest, passThrough }; throws a readable Error on a bad port. */
export function parseArgs(argv, env = process.env) {
  const passThrough = [];
  let port = null;
  let build = true;
  let logIngest = env.STEMTRACE_LOG_INGEST === "1";
  let hasIp = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--port") {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value, e.g. ${arg} 18921`);
      port = argv[++i];
    } else if (arg.startsWith("--port=")) port = arg.slice("--port=".length);
    else if (arg === "--no-build") build = false;
    else if (arg === "--log-ingest") logIngest = true;
    else {
      if (arg === "--ip" || arg.startsWith("--ip=")) hasIp = true;
      passThrough.push(arg);
    }
  }
  const source = port !== null ? "--port" : env.PORT ? "PORT" : null;
  const raw = port ?? env.PORT ?? String(DEFAULT_PORT);
  const n = Number(raw);
  if (!/^\d+$/.test(String(raw).trim()) || !Number.isInteger(n) || n < 1 || n > 65535)
    throw new Error(`${source ?? "port"}=${JSON.stringify(raw)} is not a port number (1-65535)`);
  return {
    port: n,
    build,
    logIngest,
    passThrough: hasIp ? passThrough : ["--ip", "127.0.0.1", ...passThrough],
  };
}

/** A successful ingest request in wrangler's request log (colours stripped before matching). */
export function isIngestLine(line) {
  const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
  return /\bPOST \/v1\/events 2\d\d\b/.test(plain);
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`stemtrace: ${err.message}. Usage: PORT=18921 npm start, or npm start -- --port 18921`);
    process.exit(2);
  }
  if (!existsSync(NODE)) {
    console.error("stemtrace: node_modules/.bin/node is missing: run `npm install` first (npm start does).");
    process.exit(2);
  }
  if (opts.build) {
    const vite = spawnSync(
      NODE,
      [
        join(ROOT, "node_modules/vite/bin/vite.js"),
        "build",
        "--config",
        "web/vite.config.ts",
        "--logLevel",
        "warn",
      ],
      {
        cwd: ROOT,
        stdio: "inherit",
        // Vite 8 warns that web/vite.config.ts will need a file extension under a future default
        // config loader: advice for whoever edits that file, not for someone starting stemtrace.
        env: { ...process.env, VITE_CONFIG_NATIVE_IGNORE_WARNING: "true" },
      },
    );
    if (vite.status !== 0) {
      console.error("stemtrace: the web UI did not build (see above)");
      process.exit(vite.status ?? 1);
    }
  } else {
    mkdirSync(join(ROOT, "web/dist"), { recursive: true }); // wrangler's [assets] directory must exist
  }

  const env = {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    // Miniflare fetches a sample `request.cf` object from workers.cloudflare.com (a stack trace when
    // offline); stemtrace never reads request.cf, so the built-in placeholder does.
    CLOUDFLARE_CF_FETCH_ENABLED: process.env.CLOUDFLARE_CF_FETCH_ENABLED ?? "false",
    // Piped output is not a terminal: keep wrangler's colours when ours is one.
    ...(process.stdout.isTTY && !process.env.NO_COLOR ? { FORCE_COLOR: "1" } : {}),
  };
  const args = [
    join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--port",
    String(opts.port),
    ...opts.passThrough,
  ];
  const child = spawn(NODE, args, { cwd: ROOT, env, stdio: ["inherit", "pipe", "pipe"] });
  const url = `http://127.0.0.1:${opts.port}`;
  if (opts.port !== DEFAULT_PORT)
    console.log(`stemtrace: serving on ${url}; producers need STEMTRACE_URL=${url}`);

  for (const [from, to] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    createInterface({ input: from, crlfDelay: Infinity }).on("line", (line) => {
      if (opts.logIngest || !isIngestLine(line)) to.write(line + "\n");
    });
  }
  // Stopping this process (by its PID) stops wrangler too; wrangler stops workerd.
  let stopping = false;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      stopping = true;
      if (child.exitCode === null) child.kill(sig);
    });
  }
  // wrangler answers a stop signal with 128 + its number: a stop we were asked for is a clean exit.
  child.on("exit", (code) => process.exit(stopping ? 0 : (code ?? 1)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
