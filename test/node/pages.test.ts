/**
 * Pages as the UI host (docs/deploy.md): pages/wrangler.toml against the Worker's, the Functions
 * bundle and its routes as `wrangler pages deploy` builds them (no account, no login), the
 * Function's own errors, and the whole path run locally: `wrangler dev` (the Worker) and `wrangler
 * pages dev` (the Pages project, its STEMTRACE service binding connected to that Worker through a
 * dev registry of this run's own), each on a free loopback port, checked through the Pages port
 * only: the SPA and its assets with the security headers, the SPA fallback, the API and ingestion
 * answered by the Worker, both live sockets, and the Worker's Origin checks judging the host the
 * browser used (the Pages host), not its own.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { gzipSync } from "node:zlib";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { onRequest } from "../../pages/forward";
import { API_CSP, APP_CSP, COMMON_HEADERS, HSTS } from "../../worker/headers";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const PAGES = join(ROOT, "pages");
const NODE = join(ROOT, "node_modules/.bin/node");
const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const run = promisify(execFile);

/** No Cloudflare credentials, no login, no telemetry, no `request.cf` download (offline machines). */
function quietEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of Object.keys(env)) if (key.startsWith("CLOUDFLARE_")) delete env[key];
  return {
    ...env,
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    CI: "1",
    NO_COLOR: "1",
    FORCE_COLOR: "0",
  };
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
    srv.on("error", fail);
  });
}

interface WranglerConfig {
  name?: string;
  main?: string;
  compatibility_date?: string;
  pages_build_output_dir?: string;
  services?: { binding: string; service: string; entrypoint?: string }[];
}
const readConfig = (path: string): WranglerConfig =>
  unstable_readConfig({ config: path }, { hideWarnings: true }) as WranglerConfig;

describe("pages/wrangler.toml against the Worker's", () => {
  const worker = readConfig(join(ROOT, "wrangler.toml"));
  const pages = readConfig(join(PAGES, "wrangler.toml"));

  it("is a Pages project serving the UI build, bound to the Worker the root wrangler.toml names", () => {
    expect(pages.main).toBeUndefined(); // a Pages configuration may not have one
    // `npm run build:web` writes web/dist (web/vite.config.ts); a relative path is the file's.
    expect(resolve(PAGES, pages.pages_build_output_dir ?? "")).toBe(join(ROOT, "web/dist"));
    expect(pages.services).toEqual([{ binding: "STEMTRACE", service: worker.name }]);
    expect(pages.compatibility_date).toBe(worker.compatibility_date);
    expect(pages.name).not.toBe(worker.name);
  });

  it("is found by wrangler run in pages/ (its own package.json makes pages/ the project root)", () => {
    // `wrangler pages dev|deploy` take no --config; they read the file in the working directory and
    // put their build where the nearest package.json is (without it, the Worker's config leaks in).
    expect(existsSync(join(PAGES, "package.json"))).toBe(true);
    expect(JSON.parse(readFileSync(join(PAGES, "package.json"), "utf8")).private).toBe(true);
  });
});

describe("the Pages Functions bundle, built as `wrangler pages deploy` builds it, without an account", () => {
  let tmp = "";
  let routes: { version: number; include: string[]; exclude: string[] };
  let bundle = "";

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "stemtrace-pages-build-"));
    const home = join(tmp, "home");
    await run(
      NODE,
      [
        WRANGLER,
        "pages",
        "functions",
        "build",
        "--outdir",
        join(tmp, "out"),
        "--output-routes-path",
        join(tmp, "_routes.json"),
      ],
      { cwd: PAGES, env: quietEnv({ HOME: home, XDG_CONFIG_HOME: join(home, ".config") }) },
    );
    routes = JSON.parse(readFileSync(join(tmp, "_routes.json"), "utf8"));
    bundle = readFileSync(join(tmp, "out/index.js"), "utf8");
  }, 120_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("invokes the Function only for /api/* and /v1/*: every other path is a static asset", () => {
    // https://developers.cloudflare.com/pages/functions/routing/#create-a-_routesjson-file
    expect(routes.version).toBe(1);
    expect([...routes.include].sort()).toEqual(["/api/*", "/v1/*"]);
    expect(routes.exclude).toEqual([]);
  });

  it("bundles the forwarding Function for both routes", () => {
    expect(bundle).toMatch(/routePath: "\/api\/:path\*"/);
    expect(bundle).toMatch(/routePath: "\/v1\/:path\*"/);
    expect(bundle).toContain("service_binding_missing");
    expect(bundle).toMatch(/export\s*\{[^}]*\bas default\b/);
  });
});

describe("the Function's own answers", () => {
  type Context = Parameters<typeof onRequest>[0];
  const call = (request: Request, env: Record<string, unknown>) =>
    onRequest({ request, env } as unknown as Context);

  it("without the binding: 500 naming the missing binding, with the API's security headers", async () => {
    const res = await call(new Request("https://ui.example.com/api/health"), {});
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("service_binding_missing");
    expect(body.error.message).toContain("STEMTRACE");
    expect(res.headers.get("Content-Security-Policy")).toBe(API_CSP);
    for (const [k, v] of Object.entries(COMMON_HEADERS)) expect(res.headers.get(k)).toBe(v);
    expect(res.headers.get("Strict-Transport-Security")).toBe(HSTS);
  });

  it("when the Worker cannot be reached: 502 saying so (no HSTS on a loopback host)", async () => {
    const failing = {
      fetch: () => Promise.reject(new Error('Worker "stemtrace" not found')),
    };
    const res = await call(new Request("http://127.0.0.1:8788/v1/events"), { STEMTRACE: failing });
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("worker_unreachable");
    expect(body.error.message).toContain('Worker "stemtrace" not found');
    expect(res.headers.get("Strict-Transport-Security")).toBeNull();
  });

  it("hands the Worker the request as it came and returns the Worker's answer as it is", async () => {
    const seen: Request[] = [];
    const answer = new Response("from the worker", { status: 418 });
    const binding = {
      fetch: (req: Request) => {
        seen.push(req);
        return Promise.resolve(answer);
      },
    };
    const request = new Request("https://ui.example.com/api/live?x=1", {
      headers: { Upgrade: "websocket", Origin: "https://ui.example.com", "Cf-Access-Jwt-Assertion": "t" },
    });
    expect(await call(request, { STEMTRACE: binding })).toBe(answer);
    expect(seen).toEqual([request]);
    expect(seen[0]!.url).toBe("https://ui.example.com/api/live?x=1");
  });
});

/** A process group started for this file: stopped (SIGTERM, then SIGKILL) whatever happens. */
interface Started {
  child: ChildProcess;
  output(): string;
}
const started: Started[] = [];
function killAll(signal: NodeJS.Signals) {
  for (const { child } of started)
    if (child.exitCode === null && child.signalCode === null && child.pid)
      try {
        process.kill(-child.pid, signal); // wrangler, its node re-exec and workerd share the group
      } catch {
        // already gone
      }
}
// Last resort if the run is torn down before afterAll (a crashed worker thread, ^C).
process.once("exit", () => killAll("SIGKILL"));

function startWrangler(args: string[], cwd: string, env: NodeJS.ProcessEnv): Started {
  const child = spawn(NODE, [WRANGLER, ...args], {
    cwd,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const s = { child, output: () => output };
  started.push(s);
  return s;
}

async function stopAll() {
  killAll("SIGTERM");
  const deadline = Date.now() + 10_000;
  while (started.some((s) => s.child.exitCode === null && s.child.signalCode === null)) {
    if (Date.now() > deadline) {
      killAll("SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `probe` until it returns something, or fails with what the servers printed. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, procs: Started[]): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    for (const p of procs)
      if (p.child.exitCode !== null) throw new Error(`${what}: a server exited early:\n${p.output()}`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: gave up after 120 s\n${procs.map((p) => p.output()).join("\n----\n")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A live socket through Node's WebSocket (undici: it may send an Origin, as browsers always do). */
interface Live {
  opened: boolean;
  frame(match: (m: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
  close(): void;
}
async function openLive(url: string, origin?: string): Promise<Live> {
  const init = origin ? { headers: { Origin: origin } } : undefined;
  const ws = new WebSocket(url, init as unknown as string[]);
  const frames: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let closed = false;
  ws.onmessage = (e) => {
    frames.push(JSON.parse(String(e.data)));
    for (const w of waiters.splice(0)) w();
  };
  const opened = await new Promise<boolean>((ok) => {
    ws.onopen = () => ok(true);
    // A refused handshake (a non-101 answer) is an error event; undici may send no close after it.
    const ended = () => {
      closed = true;
      ok(false);
      for (const w of waiters.splice(0)) w();
    };
    ws.onerror = ended;
    ws.onclose = ended;
  });
  return {
    opened,
    async frame(match, what) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const hit = frames.find(match);
        if (hit) return hit;
        if (closed) throw new Error(`the socket closed before ${what}; frames: ${JSON.stringify(frames)}`);
        if (Date.now() > deadline)
          throw new Error(`no ${what} within 60 s; frames: ${JSON.stringify(frames)}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 500);
        });
      }
    },
    close: () => ws.close(1000, "test done"),
  };
}

const event = (trace: string, type = "published", seq = 1) => ({
  v: 1,
  id: `${trace}-${type}`,
  kind: "task",
  type,
  ts: Date.now() / 1000,
  seq,
  host: null,
  pid: 1,
  task_id: trace,
  name: "app.pages",
  trace_id: trace,
});

describe("wrangler pages dev, bound to wrangler dev, seen through the Pages port", () => {
  let tmp = "";
  let pages = ""; // http://127.0.0.1:<pages port>
  let worker = ""; // http://127.0.0.1:<worker port>
  let indexHtml = "";

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "stemtrace-pages-dev-"));
    const ui = join(tmp, "ui");
    // The UI as `npm run deploy:pages` builds it, into this run's own directory (web/dist is other
    // suites'); `wrangler pages dev <dir>` serves it in place of pages_build_output_dir.
    await run(
      NODE,
      [
        "node_modules/vite/bin/vite.js",
        "build",
        "--config",
        "web/vite.config.ts",
        "--outDir",
        ui,
        "--emptyOutDir",
        "--logLevel",
        "warn",
      ],
      { cwd: ROOT, env: { ...process.env, VITE_CONFIG_NATIVE_IGNORE_WARNING: "true" } },
    );
    indexHtml = readFileSync(join(ui, "index.html"), "utf8");
    mkdirSync(join(ROOT, "web/dist"), { recursive: true }); // the Worker's [assets] directory must exist

    // Both sessions register in this run's own dev registry, so the binding can only find this
    // Worker (not another `wrangler dev` of stemtrace running on the machine).
    const env = quietEnv({ WRANGLER_REGISTRY_PATH: join(tmp, "registry") });
    const [wp, wi, pp, pi] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    worker = `http://127.0.0.1:${wp}`;
    pages = `http://127.0.0.1:${pp}`;
    const w = startWrangler(
      [
        "dev",
        ...["--ip", "127.0.0.1", "--port", String(wp), "--inspector-port", String(wi)],
        ...["--persist-to", join(tmp, "worker-state"), "--log-level", "warn"],
      ],
      ROOT,
      env,
    );
    await until("wrangler dev", async () => ((await fetch(`${worker}/api/health`)).ok ? true : undefined), [
      w,
    ]);
    const p = startWrangler(
      [
        "pages",
        "dev",
        ui,
        ...["--ip", "127.0.0.1", "--port", String(pp), "--inspector-port", String(pi)],
        ...["--persist-to", join(tmp, "pages-state"), "--log-level", "warn"],
      ],
      PAGES,
      env,
    );
    // Until the binding connects, the dev registry answers 503 for the Worker.
    await until(
      "wrangler pages dev with its binding connected",
      async () => ((await fetch(`${pages}/api/health`)).status === 200 ? true : undefined),
      [w, p],
    );
  }, 300_000);

  afterAll(async () => {
    await stopAll();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 30_000);

  function expectAppHeaders(res: Response, what: string) {
    expect(res.headers.get("Content-Security-Policy"), what).toBe(APP_CSP);
    for (const [k, v] of Object.entries(COMMON_HEADERS)) expect(res.headers.get(k), `${what} ${k}`).toBe(v);
    expect(res.headers.get("Strict-Transport-Security"), what).toBe(HSTS);
    // Pages' default `Access-Control-Allow-Origin: *` is removed by `_headers`, as on Workers assets.
    expect(res.headers.get("Access-Control-Allow-Origin"), what).toBeNull();
  }

  it("serves the SPA's index and its assets with the security headers of _headers", async () => {
    const index = await fetch(`${pages}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(await index.text()).toBe(indexHtml);
    expectAppHeaders(index, "/");

    const assets = [...indexHtml.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    const script = assets.find((a) => a.endsWith(".js"))!;
    const asset = await fetch(`${pages}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("Content-Type")).toMatch(/javascript/);
    expect((await asset.text()).length).toBeGreaterThan(1000);
    expectAppHeaders(asset, script);
    expect(asset.headers.get("Cache-Control")).toBe("public, max-age=31536000, immutable");
  });

  it("falls back to index.html on deep links and unknown paths outside the API", async () => {
    for (const path of ["/traces/some-trace", "/no/such/page"]) {
      const res = await fetch(`${pages}${path}`);
      expect(res.status, path).toBe(200);
      expect(await res.text(), path).toBe(indexHtml);
      expectAppHeaders(res, path);
    }
  });

  it("answers /api/* from the Worker, with the API's headers, in local mode (the host is loopback)", async () => {
    const res = await fetch(`${pages}/api/health`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Security-Policy")).toBe(API_CSP);
    const health = (await res.json()) as { ok: boolean; version: string; auth_mode: string };
    expect(health.ok).toBe(true);
    expect(health.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(health.auth_mode).toBe("none"); // local mode is reported as "none"
    // An unknown API path is the Worker's JSON 404, not the SPA's index.html.
    const missing = await fetch(`${pages}/api/no-such-route`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("ingests through POST /v1/events (plain and gzipped) and reads the traces back through /api", async () => {
    const plain = await fetch(`${pages}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: [event("pages-plain")] }),
    });
    expect(plain.status, await plain.clone().text()).toBe(202);
    const gzipped = await fetch(`${pages}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
      body: gzipSync(JSON.stringify({ events: [event("pages-gzip")] })),
    });
    expect(gzipped.status, await gzipped.clone().text()).toBe(202);

    // The index learns of traces at the shards' next flush (FLUSH_INTERVAL_S).
    const listed = await until(
      "both traces in /api/traces",
      async () => {
        const list = (await (await fetch(`${pages}/api/traces`)).json()) as {
          traces: { trace_id: string }[];
        };
        const ids = list.traces.map((t) => t.trace_id);
        return ids.includes("pages-plain") && ids.includes("pages-gzip") ? ids : undefined;
      },
      started,
    );
    expect(listed).toEqual(expect.arrayContaining(["pages-plain", "pages-gzip"]));
    const snapshot = await fetch(`${pages}/api/traces/pages-plain`);
    expect(snapshot.status).toBe(200);
    const body = (await snapshot.json()) as { trace_id: string; nodes: { id: string }[] };
    expect(body.trace_id).toBe("pages-plain");
    expect(body.nodes.length).toBe(1);
  });

  it("upgrades /api/live through the Function: hello, then the news of a trace ingested through Pages", async () => {
    const live = await openLive(`${pages.replace("http", "ws")}/api/live`, pages);
    try {
      expect(live.opened).toBe(true);
      await live.frame((m) => m.type === "hello", "the hello frame");
      const posted = await fetch(`${pages}/v1/events`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Origin: pages },
        body: JSON.stringify({ events: [event("pages-live")] }),
      });
      expect(posted.status).toBe(202);
      const news = await live.frame(
        (m) => m.type === "trace" && (m.summary as { trace_id: string }).trace_id === "pages-live",
        "the trace frame for pages-live",
      );
      expect((news.summary as { task_count: number }).task_count).toBe(1);
    } finally {
      live.close();
    }
  });

  it("upgrades /api/traces/:id/live through the Function and says hello for that trace", async () => {
    const live = await openLive(`${pages.replace("http", "ws")}/api/traces/pages-plain/live`, pages);
    try {
      expect(live.opened).toBe(true);
      const hello = await live.frame((m) => m.type === "hello", "the hello frame");
      expect(hello.trace_id).toBe("pages-plain");
    } finally {
      live.close();
    }
  });

  it("the Worker judges Origin against the host the browser used (the Pages host), not its own", async () => {
    const post = (base: string, origin: string, id: string) =>
      fetch(`${base}/v1/events`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Origin: origin },
        body: JSON.stringify({ events: [event(id)] }),
      });
    // The UI served by Pages is same-origin with the API behind the Function.
    expect((await post(pages, pages, "origin-pages")).status).toBe(202);
    // The Worker's own address is another origin as seen through Pages, and vice versa: the
    // Function forwards the URL unchanged, so the Worker compares against the Pages host.
    for (const [base, origin] of [
      [pages, worker],
      [pages, "http://evil.example"],
      [worker, pages],
    ] as const) {
      const res = await post(base, origin, "origin-refused");
      expect(res.status, `${origin} → ${base}`).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("origin_not_allowed");
    }
    // Preflight from the Pages origin: allowed, with exactly that origin back.
    const preflight = await fetch(`${pages}/api/traces`, {
      method: "OPTIONS",
      headers: { Origin: pages, "Access-Control-Request-Method": "GET" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe(pages);
    // Sockets: the same rule, the only guard they have.
    for (const origin of [worker, "http://evil.example"]) {
      const refused = await openLive(`${pages.replace("http", "ws")}/api/live`, origin);
      expect(refused.opened, origin).toBe(false);
    }
    const allowed = await openLive(`${pages.replace("http", "ws")}/api/live`, pages);
    expect(allowed.opened).toBe(true);
    allowed.close();
  });
});
