/**
 * The Worker's edge rules, applied before any route: security headers on every response, CORS
 * preflights answered deliberately, the Origin of WebSocket upgrades and cross-site writes checked,
 * and ingestion only as JSON. Local and `none` modes have no credentials to protect the API, so
 * these rules are what stops a web page the user happens to visit from writing events or reading
 * the live feeds through the user's browser.
 */
import { createMiddleware } from "hono/factory";
import type { Env } from "../durable-objects/env";
import { authenticate } from "./auth";
import { HttpError } from "./errors";
import { API_CSP, APP_CSP, COMMON_HEADERS, HSTS } from "./headers";

/** wrangler.toml var (not in the shared Env, which other modules own): extra origins allowed to call. */
export type EdgeEnv = Env & { ALLOWED_ORIGINS?: string };

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
const isApiPath = (path: string) =>
  path.startsWith("/api/") || path.startsWith("/v1/") || path === "/api" || path === "/v1";

/** ALLOWED_ORIGINS as normalized origins (`https://dash.example.com`); entries that are not URLs are ignored. */
export function allowedOrigins(env: EdgeEnv): Set<string> {
  const out = new Set<string>();
  for (const raw of (env.ALLOWED_ORIGINS ?? "").split(/[\s,]+/)) {
    if (!raw) continue;
    try {
      const u = new URL(raw);
      if (u.protocol === "http:" || u.protocol === "https:") out.add(u.origin);
    } catch {
      // not a URL: ignored, as the README says
    }
  }
  return out;
}

/**
 * An Origin header is acceptable when it names this host (whatever the scheme: TLS may end before
 * the Worker) or an allow-listed origin. `null` (sandboxed frames, file:) never is.
 */
export function originAllowed(env: EdgeEnv, req: Request, origin: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return false;
  if (parsed.host === new URL(req.url).host) return true;
  return allowedOrigins(env).has(parsed.origin);
}

const originRefused = (origin: string) =>
  new HttpError(
    403,
    "origin_not_allowed",
    `requests from the web origin ${origin} are refused: only pages served by stemtrace itself may use its API from a browser; add the origin to ALLOWED_ORIGINS to allow it`,
  );

const ALLOW_METHODS = "GET, POST, OPTIONS";
const ALLOW_HEADERS = "Content-Type, Content-Encoding, Authorization, Cf-Access-Jwt-Assertion";

/** Security headers on every response the Worker makes (static assets get theirs from `_headers`). */
export const securityHeaders = createMiddleware<{ Bindings: EdgeEnv }>(async (c, next) => {
  await next();
  // A 101 carries the socket; its headers mean nothing to a browser and cannot be rebuilt.
  if (c.res.status === 101) return;
  const res = new Response(c.res.body, c.res); // responses from objects and ASSETS are immutable
  const api = isApiPath(c.req.path);
  res.headers.set("Content-Security-Policy", api ? API_CSP : APP_CSP);
  for (const [k, v] of Object.entries(COMMON_HEADERS)) res.headers.set(k, v);
  if (!LOOPBACK.has(new URL(c.req.url).hostname)) res.headers.set("Strict-Transport-Security", HSTS);
  const origin = c.req.header("Origin");
  if (api && origin && allowedOrigins(c.env).has(origin)) {
    res.headers.set("Access-Control-Allow-Origin", origin);
    res.headers.append("Vary", "Origin");
  }
  c.res = res;
});

/**
 * Preflights: answered before auth (they carry no credentials), never with a wildcard. An
 * allow-listed (or same-host) origin gets exactly its own origin back; any other is refused, so
 * the browser never sends the real request.
 */
export const corsAndOrigin = createMiddleware<{ Bindings: EdgeEnv }>(async (c, next) => {
  if (!isApiPath(c.req.path)) return next();
  const origin = c.req.header("Origin");
  if (c.req.method === "OPTIONS") {
    if (!origin) return c.body(null, 204, { Allow: ALLOW_METHODS });
    if (!originAllowed(c.env, c.req.raw, origin)) throw originRefused(origin);
    return c.body(null, 204, {
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Allow-Methods": ALLOW_METHODS,
      "Access-Control-Allow-Headers": ALLOW_HEADERS,
      "Access-Control-Max-Age": "600",
      Vary: "Origin",
    });
  }
  // Browsers send Origin on every WebSocket handshake and on cross-site writes; producers and
  // scripts send none. Sockets are not covered by CORS, so this check is the only guard.
  const socket = c.req.header("Upgrade")?.toLowerCase() === "websocket";
  if (origin && (socket || c.req.method !== "GET") && !originAllowed(c.env, c.req.raw, origin))
    throw originRefused(origin);
  return next();
});

/**
 * Ingest only takes `application/json` (gzipped or not: Content-Encoding is separate). A browser
 * can send `text/plain`, form or multipart bodies cross-site without a preflight; JSON it cannot.
 */
export const jsonOnly = createMiddleware<{ Bindings: EdgeEnv }>(async (c, next) => {
  if (c.req.method !== "POST") return next();
  const type = c.req.header("Content-Type");
  const media = type?.split(";")[0]!.trim().toLowerCase();
  if (media !== "application/json")
    throw new HttpError(
      415,
      "unsupported_media_type",
      `send the batch with Content-Type: application/json (gzip it with Content-Encoding: gzip if you like); got ${type ? JSON.stringify(type) : "no Content-Type"}`,
    );
  return next();
});

/**
 * `/api/health` answers anyone (load balancers, uptime checks) but only says "ok" to callers that
 * are not authenticated; signed-in callers get the details (version, auth mode, backends). A
 * configuration error (503) is still reported.
 */
export const healthGate = createMiddleware<{ Bindings: EdgeEnv }>(async (c, next) => {
  try {
    await authenticate(c.env, c.req.raw, "read");
  } catch (err) {
    if (err instanceof HttpError && err.status === 503) throw err;
    if (err instanceof HttpError) return c.json({ ok: true }, 200);
    throw err;
  }
  return next();
});
