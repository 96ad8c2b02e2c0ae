/**
 * The edge rules (worker/edge.ts): ingest only as JSON (a page's no-cors text/plain POST is not
 * stored), the Origin of WebSocket handshakes and cross-site writes, CORS preflights without a
 * wildcard, and the security headers on every Worker response.
 */
import { env as workerEnv, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../durable-objects/env";
import { staticHeadersFile } from "../../worker/headers";
import app from "../../worker/index";
import { settle } from "./objects";

const BASE = "http://127.0.0.1";
const event = (id: string, trace: string) => ({
  v: 1,
  id,
  kind: "task",
  type: "published",
  ts: Date.now() / 1000,
  seq: 1,
  host: null,
  pid: 1,
  task_id: trace,
  name: "app.edge",
  trace_id: trace,
});
const batch = (id: string) => JSON.stringify({ events: [event(id, `edge-${id}`)] });
const send = (init: RequestInit, path = "/v1/events") => exports.default.fetch(`${BASE}${path}`, init);

async function traceExists(id: string): Promise<boolean> {
  return (await exports.default.fetch(`${BASE}/api/traces/edge-${id}`)).status === 200;
}

function socket(
  path: string,
  origin?: string,
  env?: Partial<Env> & { ALLOWED_ORIGINS?: string },
  host = BASE,
) {
  const headers: Record<string, string> = { Upgrade: "websocket" };
  if (origin) headers.Origin = origin;
  const req = new Request(`${host}${path}`, { headers });
  return env ? app.fetch(req, { ...workerEnv, ...env } as Env) : exports.default.fetch(req);
}

async function closeSocket(res: Response) {
  expect(res.status).toBe(101);
  res.webSocket!.accept();
  res.webSocket!.close(1000, "test done");
}

describe("ingest takes JSON only", () => {
  it("refuses text/plain (what a no-cors page can send), forms, multipart and no Content-Type with 415, and stores nothing", async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ["plain", { "Content-Type": "text/plain" }],
      ["plaincs", { "Content-Type": "text/plain;charset=UTF-8" }],
      ["form", { "Content-Type": "application/x-www-form-urlencoded" }],
      ["multi", { "Content-Type": "multipart/form-data; boundary=x" }],
      ["jsonish", { "Content-Type": "application/jsonx" }],
    ];
    for (const [id, headers] of cases) {
      const res = await send({ method: "POST", headers, body: batch(id) });
      expect(res.status, id).toBe(415);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("unsupported_media_type");
      expect(body.error.message).toContain("Content-Type: application/json");
      expect(body.error.message).toContain(headers["Content-Type"]!);
      expect(await traceExists(id)).toBe(false);
    }
    // A string body without a header is sent as text/plain by fetch: refused as well.
    const bare = await send({ method: "POST", body: batch("bare") });
    expect(bare.status).toBe(415);
    const none = await send({ method: "POST", body: new TextEncoder().encode(batch("none")) });
    expect(none.status).toBe(415);
    expect(((await none.json()) as { error: { message: string } }).error.message).toContain(
      "no Content-Type",
    );
  });

  it("accepts application/json with parameters and in any case, gzipped or not", async () => {
    for (const [id, type] of [
      ["cs", "application/json; charset=utf-8"],
      ["upper", "Application/JSON"],
    ] as const) {
      const res = await send({ method: "POST", headers: { "Content-Type": type }, body: batch(id) });
      expect(res.status, type).toBe(202);
      expect(await traceExists(id)).toBe(true);
    }
    const gz = await new Response(
      new Blob([batch("gz")]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const res = await send({
      method: "POST",
      headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
      body: gz,
    });
    expect(res.status).toBe(202);
    expect(await traceExists("gz")).toBe(true);
  });
});

describe("Origin of sockets and cross-site writes", () => {
  beforeAll(async () => {
    // A trace that exists: in the per-trace layout an unknown trace's socket is a 404 (no object is made for it).
    expect(
      (await send({ method: "POST", headers: { "Content-Type": "application/json" }, body: batch("ws") }))
        .status,
    ).toBe(202);
    await settle();
  });

  it("refuses a WebSocket handshake from another web origin with 403 and says how to allow it", async () => {
    for (const path of ["/api/live", "/api/traces/edge-ws/live"])
      for (const origin of [
        "https://evil.example",
        "http://127.0.0.1.evil.example",
        "null",
        "http://localhost:8787",
      ]) {
        const res = await socket(path, origin);
        expect(res.status, `${path} ${origin}`).toBe(403);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("origin_not_allowed");
        expect(body.error.message).toContain("ALLOWED_ORIGINS");
      }
  });

  it("accepts its own host's pages, clients that send no Origin, and allow-listed origins", async () => {
    await closeSocket(await socket("/api/live", "http://127.0.0.1"));
    await closeSocket(await socket("/api/live", "https://127.0.0.1")); // TLS may end before the Worker
    await closeSocket(await socket("/api/live"));
    await closeSocket(
      await socket("/api/traces/edge-ws/live", "https://dash.example.com", {
        ALLOWED_ORIGINS: "https://dash.example.com, http://localhost:5173",
      }),
    );
    await closeSocket(
      await socket("/api/live", "http://localhost:5173", {
        ALLOWED_ORIGINS: "https://dash.example.com, http://localhost:5173",
      }),
    );
    // An allow-list entry is an exact origin, not a prefix or a host.
    expect(
      (
        await socket("/api/live", "https://dash.example.com.evil.example", {
          ALLOWED_ORIGINS: "https://dash.example.com",
        })
      ).status,
    ).toBe(403);
    expect(
      (await socket("/api/live", "http://dash.example.com", { ALLOWED_ORIGINS: "https://dash.example.com" }))
        .status,
    ).toBe(403);
  });

  it("refuses a JSON POST from a foreign page (defence in depth behind the preflight)", async () => {
    const res = await send({
      method: "POST",
      headers: { "Content-Type": "application/json", Origin: "https://evil.example" },
      body: batch("evilpost"),
    });
    expect(res.status).toBe(403);
    expect(await traceExists("evilpost")).toBe(false);
    const own = await send({
      method: "POST",
      headers: { "Content-Type": "application/json", Origin: "http://127.0.0.1" },
      body: batch("ownpost"),
    });
    expect(own.status).toBe(202);
  });
});

describe("CORS preflights", () => {
  const preflight = (origin: string, env?: { ALLOWED_ORIGINS?: string }) => {
    const req = new Request(`${BASE}/v1/events`, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
    });
    return env ? app.fetch(req, { ...workerEnv, ...env } as Env) : exports.default.fetch(req);
  };

  it("refuses an origin that is not allowed, without any Access-Control header", async () => {
    const res = await preflight("https://evil.example");
    expect(res.status).toBe(403);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBeNull();
    expect(res.headers.get("Access-Control-Allow-Methods")).toBeNull();
  });

  it("answers an allow-listed origin with exactly that origin, never a wildcard", async () => {
    const res = await preflight("https://dash.example.com", { ALLOWED_ORIGINS: "https://dash.example.com" });
    expect(res.status).toBe(204);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe("https://dash.example.com");
    expect(res.headers.get("Access-Control-Allow-Methods")).toContain("POST");
    expect(res.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("content-type");
    expect(res.headers.get("Access-Control-Allow-Credentials")).toBeNull();
    expect(res.headers.get("Vary")).toContain("Origin");
    // The real request from there carries the same origin back; a foreign one gets none.
    const env = { ...workerEnv, ALLOWED_ORIGINS: "https://dash.example.com" } as Env;
    const read = await app.fetch(
      new Request(`${BASE}/api/workers`, { headers: { Origin: "https://dash.example.com" } }),
      env,
    );
    expect(read.headers.get("Access-Control-Allow-Origin")).toBe("https://dash.example.com");
    const foreign = await app.fetch(
      new Request(`${BASE}/api/workers`, { headers: { Origin: "https://evil.example" } }),
      env,
    );
    expect(foreign.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});

describe("security headers", () => {
  const expectCommon = (res: Response, label: string) => {
    expect(res.headers.get("X-Content-Type-Options"), label).toBe("nosniff");
    expect(res.headers.get("Referrer-Policy"), label).toBe("no-referrer");
    expect(res.headers.get("Content-Security-Policy"), label).toContain("frame-ancestors 'none'");
    expect(res.headers.get("Content-Security-Policy"), label).not.toContain("unsafe-inline");
  };

  it("are on every API answer: success, client errors, not found, refusals, preflights", async () => {
    const answers: Array<[string, Response | Promise<Response>]> = [
      ["list", exports.default.fetch(`${BASE}/api/traces`)],
      ["health", exports.default.fetch(`${BASE}/api/health`)],
      ["404", exports.default.fetch(`${BASE}/api/traces/edge-no-such-trace`)],
      ["no route", exports.default.fetch(`${BASE}/api/nothing-here`)],
      ["415", send({ method: "POST", body: "x" })],
      ["400", send({ method: "POST", headers: { "Content-Type": "application/json" }, body: "{" })],
      ["403 origin", socket("/api/live", "https://evil.example")],
      ["preflight", exports.default.fetch(`${BASE}/v1/events`, { method: "OPTIONS" })],
    ];
    for (const [label, p] of answers) {
      const res = await p;
      expectCommon(res, label);
      expect(res.headers.get("Content-Security-Policy"), label).toContain("default-src 'none'");
      expect(res.headers.get("Strict-Transport-Security"), label).toBeNull(); // loopback: no HSTS
    }
  });

  it("add HSTS when the host is not local", async () => {
    const res = await app.fetch(new Request("https://stemtrace.example.com/api/health"), {
      ...workerEnv,
      AUTH_MODE: "none",
    } as Env);
    expectCommon(res, "deployed");
    expect(res.headers.get("Strict-Transport-Security")).toMatch(/max-age=\d{7,}/);
    const refused = await app.fetch(new Request("https://stemtrace.example.com/api/traces"), {
      ...workerEnv,
      AUTH_MODE: undefined,
    } as Env);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("Strict-Transport-Security")).toMatch(/max-age=/);
  });

  it("the static assets' _headers file carries the app's policy: no inline script or style, WebSockets to itself", () => {
    const file = staticHeadersFile();
    const rule = file.split("\n/assets/*")[0]!;
    expect(rule.startsWith("/*\n")).toBe(true);
    const csp = rule.match(/Content-Security-Policy: (.*)/)![1]!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-(inline|eval)|\*/);
    for (const h of [
      "X-Content-Type-Options: nosniff",
      "Referrer-Policy: no-referrer",
      "Strict-Transport-Security:",
    ])
      expect(rule).toContain(h);
    expect(file).toContain("/assets/*\n  Cache-Control: public, max-age=31536000, immutable");
  });
});
