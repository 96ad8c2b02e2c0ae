/**
 * Hostile and extreme data in headless Chromium: stored through the API (huge and negative times,
 * lone surrogates in names and ids, very long strings, deep JSON, NaN marker objects), then the same
 * pages served with API answers pushed to extreme shapes (playwright routes rewrite the real
 * responses). Every page must keep its frame and content — no blank page, no uncaught error — and
 * run under the Content-Security-Policy from `_headers` without a single violation, sockets included.
 */
import type { Browser, BrowserContext, Page, Response as PwResponse } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, screenshot, startServer, type Server } from "./harness";

let server: Server;
let browser: Browser;
const accepted: Record<string, { status: number; body: string }> = {};

const LONE = "\uD800"; // half of a surrogate pair: not valid UTF-16 on its own
const LONG = "x".repeat(20_000);
const now = Date.now() / 1000;
const deep = (depth: number): unknown => (depth === 0 ? { $float: "NaN" } : { d: [deep(depth - 1)] });
let n = 0;
const task = (task_id: string, type: string, extra: Record<string, unknown> = {}) => ({
  v: 1,
  id: `hard-${++n}`,
  kind: "task",
  type,
  ts: now - 5,
  seq: n,
  host: type === "published" ? null : "hard@host",
  pid: 9,
  task_id,
  name: "app.hostile",
  trace_id: task_id,
  ...extra,
});

const NORMAL = "hard-normal";
const PAGES = (ids: { trace: string; task: string }) => [
  ["traces list", "/"],
  ["trace graph", `/traces/${ids.trace}?task=${ids.task}`],
  ["trace timeline", `/traces/${ids.trace}?view=timeline`],
  ["task", `/tasks/${ids.task}`],
  ["dashboard", "/dashboard"],
  ["workers", "/workers"],
  ["registry", "/registry"],
];

/** Posts one batch on its own and records the answer: the server may (rightly) reject some of these. */
async function store(label: string, events: unknown[]) {
  const res = await fetch(`${server.base}/v1/events`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  accepted[label] = { status: res.status, body: (await res.text()).slice(0, 300) };
  expect(res.status, `${label}: ${accepted[label]!.body}`).toBeLessThan(500);
}

beforeAll(async () => {
  server = await startServer();
  // A normal trace beside the hostile ones, so every page has something to draw.
  await store("normal", [
    task(NORMAL, "published"),
    task(NORMAL, "started"),
    task(NORMAL, "succeeded", { result: { $float: "NaN" } }),
    task(NORMAL, "postrun", { state: "SUCCESS", runtime_ms: 12 }),
  ]);
  await store("huge ts", [
    task("hard-huge-ts", "published", { ts: 9e12 }),
    task("hard-huge-ts", "started", { ts: 9e12 + 1 }),
  ]);
  await store("negative ts", [task("hard-negative-ts", "published", { ts: -1e10 })]);
  await store("unknown with lone surrogate", [
    task(`hard-lone-${LONE}-id`, "unknown", {
      name: `does.not${LONE}.exist`,
      exception: { type: "KeyError", message: `'x${LONE}'` },
    }),
  ]);
  await store("lone surrogate name", [
    task("hard-lone-name", "published", { name: `app.${LONE}weird` }),
    task("hard-lone-name", "failed", {
      name: `app.${LONE}weird`,
      exception: { type: `Err${LONE}`, message: LONE },
      traceback: `Traceback\n${LONE}`,
    }),
  ]);
  await store("long strings", [
    task("hard-long", "published", { queue: "q".repeat(300) }),
    task("hard-long", "failed", { exception: { type: "E".repeat(300), message: LONG }, traceback: LONG }),
  ]);
  await store("deep json", [task("hard-deep", "published", { args: [deep(60)], kwargs: { k: deep(60) } })]);
  await store("nan markers", [
    task("hard-nan", "published", {
      args: [{ $float: "NaN" }, { $float: "Infinity" }, { $float: "-Infinity" }],
      kwargs: { x: { $float: "NaN" } },
    }),
  ]);
  await store("worker", [
    {
      v: 1,
      id: "hard-w-online",
      kind: "worker",
      type: "online",
      ts: now,
      seq: 0,
      host: `hard${LONE}@host`,
      pid: 9,
      freq: 2,
      pool: "prefork",
      concurrency: 4,
      queues: ["celery", `q${LONE}`],
      registered: [
        { name: `app.reg${LONE}`, module: LONG.slice(0, 300), signature: "(x)", doc: LONG.slice(0, 10_000) },
      ],
    },
  ]);
  await store("worker huge ts", [
    {
      v: 1,
      id: "hard-w-future",
      kind: "worker",
      type: "heartbeat",
      ts: 9e12,
      seq: 1,
      host: "hard-future@host",
      pid: 9,
      freq: 2,
    },
  ]);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

interface Watch {
  errors: string[];
  csp: string[];
}

/** A fresh page that records uncaught errors and every CSP violation (console and event). */
async function watchedPage(context: BrowserContext): Promise<{ page: Page; watch: Watch }> {
  const page = await context.newPage();
  const watch: Watch = { errors: [], csp: [] };
  page.on("pageerror", (e) => watch.errors.push(e.message));
  page.on("console", (m) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) watch.csp.push(m.text());
  });
  await page.exposeFunction("__reportCsp", (v: string) => watch.csp.push(v));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      (window as unknown as { __reportCsp(v: string): void }).__reportCsp(
        `${e.violatedDirective} ${e.blockedURI}`,
      ),
    );
  });
  return { page, watch };
}

/** Waits for the page to settle and returns what it shows; fails when the page is blank. */
async function assertRendered(page: Page, label: string): Promise<{ regionErrors: string[] }> {
  await page.locator("nav.topbar .brand").waitFor({ timeout: 20_000 });
  // Settled: no loading line left (graph layout included).
  await page.waitForFunction(
    () =>
      !document.querySelector(".loading") &&
      (document.querySelector("main")?.textContent ?? "").trim().length > 0,
    undefined,
    { timeout: 30_000 },
  );
  const main = (await page.locator("main").innerText()).trim();
  expect(main.length, `${label}: main is empty`).toBeGreaterThan(0);
  expect(await page.locator("nav.topbar a").count(), `${label}: the top bar is gone`).toBeGreaterThanOrEqual(
    5,
  );
  const regionErrors = await page
    .locator("[data-region-error]")
    .evaluateAll((els) => els.map((e) => e.textContent ?? ""));
  return { regionErrors };
}

describe("hostile stored data", () => {
  it("stores or rejects each hostile batch without a 5xx", () => {
    console.info(
      `hostile batches: ${Object.entries(accepted)
        .map(([k, r]) => `${k} → ${r.status} ${r.body}`)
        .join("\n")}`,
    );
    for (const [label, r] of Object.entries(accepted))
      expect(r.status, `${label}: ${r.body}`).toBeLessThan(500);
    expect(accepted.normal!.status).toBe(202);
  });

  it("renders every page with its frame, no uncaught error and no CSP violation", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, watch } = await watchedPage(context);
    const pages = [
      ...PAGES({ trace: NORMAL, task: NORMAL }),
      ["huge-ts trace", "/traces/hard-huge-ts?task=hard-huge-ts"],
      ["huge-ts timeline", "/traces/hard-huge-ts?view=timeline"],
      ["lone-name trace", "/traces/hard-lone-name?task=hard-lone-name"],
      ["long task", "/tasks/hard-long"],
      ["deep task", "/tasks/hard-deep"],
      ["nan task", "/tasks/hard-nan"],
      ["malformed escape", "/traces/%E0%A4%A"],
    ];
    for (const [label, path] of pages) {
      await page.goto(`${server.base}${path}`);
      const { regionErrors } = await assertRendered(page, label!);
      // Stored data, whatever it holds, renders without any region failing.
      expect(regionErrors, `${label}: ${regionErrors.join(" | ")}`).toEqual([]);
    }
    await screenshot(page, "hardening-stored-dashboard");
    expect(watch.errors).toEqual([]);
    expect(watch.csp).toEqual([]);
    await context.close();
  });
});

/** Rewrites every number that is a time or a duration, and every name-like string, in an API answer. */
type Variant = { time: number; ms: number; str: (s: string) => string; ids?: boolean };
function extremize(value: unknown, v: Variant, key = ""): unknown {
  if (Array.isArray(value)) return value.map((x) => extremize(x, v, key));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, x]) => [k, extremize(x, v, k)]));
  if (typeof value === "number") {
    if (/(_at|^ts|^since|^start|_ts|last_seen|^first_seen)$/.test(key)) return v.time;
    if (/_ms$/.test(key)) return v.ms;
    if (/rate$/.test(key)) return v.ms < 0 ? -1 : 1e300;
  }
  // Ids with a lone surrogate: what made every link to them throw "URI malformed".
  if (v.ids && typeof value === "string" && /^(id|trace_id|task_id|parent_id|root_id)$/.test(key))
    return `${value}${LONE}`;
  if (
    typeof value === "string" &&
    /(^|_)(name|hostname|explanation|fix|message|type|worker|queue|reason|module|signature|doc)$/.test(key)
  )
    return v.str(value);
  return value;
}

const VARIANTS: Array<[string, Variant]> = [
  ["past a Date's range", { time: 8.64e12 + 1, ms: 1e300, str: (s) => `${s}${LONE}` }],
  [
    "far negative, lone surrogates in ids",
    { time: -1e15, ms: -5, str: (s) => `${LONE}${s}\uDFFF`, ids: true },
  ],
  [
    "huge numbers and long text",
    { time: 1.7976931348623157e308, ms: 1.7976931348623157e308, str: (s) => `${s}${"w".repeat(5000)}` },
  ],
];

describe("extreme API answers (routes rewrite the real responses)", () => {
  for (const [variant, v] of VARIANTS)
    it(`keeps every page standing: ${variant}`, async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.route(/\/api\/(?!health)/, async (route) => {
        const res = await route.fetch();
        const type = res.headers()["content-type"] ?? "";
        if (!type.includes("json")) return route.fulfill({ response: res });
        const body = extremize(await res.json(), v);
        await route.fulfill({ response: res, body: JSON.stringify(body) });
      });
      const { page, watch } = await watchedPage(context);
      const failed: string[] = [];
      for (const [label, path] of PAGES({ trace: NORMAL, task: NORMAL })) {
        await page.goto(`${server.base}${path}`);
        const { regionErrors } = await assertRendered(page, `${variant} / ${label}`);
        failed.push(...regionErrors.map((e) => `${label}: ${e}`));
      }
      await screenshot(page, `hardening-extreme-${VARIANTS.findIndex(([x]) => x === variant)}`);
      // A region may fail on a value no server sends (it then says so); the page never does.
      expect(watch.errors).toEqual([]);
      expect(watch.csp).toEqual([]);
      expect(failed, failed.join("\n")).toEqual([]);
      await context.close();
    });

  it("a region that throws (a result nested 20,000 deep) shows its message and retry; the rest of the task stays", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    let nested = '{"leaf":1}';
    for (let i = 0; i < 20_000; i++) nested = `{"d":${nested}}`;
    await context.route(/\/api\/tasks\/hard-normal$/, async (route) => {
      const res = await route.fetch();
      const text = (await res.text()).replace('"result":', `"result":${nested},"_was":`);
      await route.fulfill({ response: res, body: text });
    });
    const { page, watch } = await watchedPage(context);
    await page.goto(`${server.base}/tasks/${NORMAL}`);
    await assertRendered(page, "deep result");
    await page.locator(".task-detail .facts").waitFor();
    expect(await page.locator(".task-detail h2").innerText()).toContain("app.hostile");
    expect(await page.locator(".task-detail .attempt").count()).toBeGreaterThan(0);
    const failed = page.locator('[data-region-error="result"]');
    if ((await failed.count()) > 0) {
      // The boundary caught it: a message naming the region, and a retry that tries again.
      expect(await failed.innerText()).toMatch(/This part \(result\) failed to render: .+/);
      await failed.locator("button", { hasText: "retry" }).click();
      await page.locator('[data-region-error="result"]').waitFor();
    }
    expect(watch.errors).toEqual([]);
    await context.close();
  });
});

describe("headers in the browser", () => {
  it("serves pages, deep links and assets with the security headers from _headers, and sockets still connect", async () => {
    const context = await browser.newContext();
    const { page, watch } = await watchedPage(context);
    const assets: PwResponse[] = [];
    page.on("response", (r) => r.url().includes("/assets/") && assets.push(r));
    for (const path of ["/", `/traces/${NORMAL}`, "/no/such/page"]) {
      const res = (await page.goto(`${server.base}${path}`))!;
      const h = res.headers();
      expect(h["content-security-policy"], path).toContain("script-src 'self'");
      expect(h["content-security-policy"], path).toContain("frame-ancestors 'none'");
      expect(h["content-security-policy"], path).not.toContain("unsafe-inline");
      expect(h["x-content-type-options"], path).toBe("nosniff");
      expect(h["referrer-policy"], path).toBe("no-referrer");
      await page.locator(".connection.live").waitFor({ timeout: 20_000 }); // connect-src 'self' lets ws:// through
    }
    expect(assets.length).toBeGreaterThan(0);
    for (const a of assets) {
      expect(a.headers()["x-content-type-options"], a.url()).toBe("nosniff");
      expect(a.headers()["cache-control"], a.url()).toContain("immutable");
    }
    const api = await fetch(`${server.base}/api/traces`);
    expect(api.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(watch.csp).toEqual([]);
    expect(watch.errors).toEqual([]);
    await context.close();
  });

  it("a foreign page cannot store events or open the live socket", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // A page on another origin (another loopback port is another origin).
    const foreign = `http://localhost:${new URL(server.base).port}`;
    await page.goto(`${foreign}/`);
    const outcome = await page.evaluate(async (target) => {
      const body = JSON.stringify({
        events: [
          {
            v: 1,
            id: "csrf-1",
            kind: "task",
            type: "published",
            ts: Date.now() / 1000,
            seq: 1,
            host: null,
            pid: 1,
            task_id: "csrf-trace",
            name: "app.csrf",
            trace_id: "csrf-trace",
          },
        ],
      });
      await fetch(`${target}/v1/events`, {
        method: "POST",
        mode: "no-cors",
        headers: { "Content-Type": "text/plain" },
        body,
      }).catch(() => null);
      const json = await fetch(`${target}/v1/events`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      }).then(
        (r) => `status ${r.status}`,
        (e: Error) => `blocked: ${e.message}`,
      );
      const socket = await new Promise<string>((resolve) => {
        const ws = new WebSocket(`${target.replace("http", "ws")}/api/live`);
        ws.onopen = () => resolve("open");
        ws.onerror = () => resolve("refused");
      });
      return { json, socket };
    }, server.base);
    expect(outcome.json).toMatch(/^blocked/);
    expect(outcome.socket).toBe("refused");
    expect((await fetch(`${server.base}/api/traces/csrf-trace`)).status).toBe(404);
    await context.close();
  });
});
