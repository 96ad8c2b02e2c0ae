import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import { createMiddleware } from "hono/factory";
import type { Env } from "../durable-objects/env";
import { HttpError } from "./errors";

/** Who is calling: a person (may read), a machine (may ingest), or anyone in local mode. */
export type Caller =
  { kind: "local" } | { kind: "person"; email: string } | { kind: "service"; name: string };

export type AuthMode = "local" | "none" | "token" | "access" | "unconfigured";

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
const jwksByTeam = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

/** AUTH_MODE, or "local" when unset and served from a loopback host (wrangler dev). */
export function authMode(env: Env, url: URL): AuthMode {
  const mode = env.AUTH_MODE?.trim().toLowerCase();
  if (mode === "none" || mode === "token" || mode === "access") return mode;
  return LOCAL_HOSTS.has(url.hostname) ? "local" : "unconfigured";
}

/**
 * Constant-time comparison, so the ingest token cannot be guessed byte by byte: the runtime's
 * `crypto.subtle.timingSafeEqual`, which needs equal lengths (a different length is compared with
 * itself, so it takes the same time, and fails).
 */
export function timingSafeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  if (ea.byteLength !== eb.byteLength) {
    crypto.subtle.timingSafeEqual(ea, ea);
    return false;
  }
  return crypto.subtle.timingSafeEqual(ea, eb);
}

/** Cloudflare Access signs its tokens with RS256 only: nothing else (none, HS256, …) is even tried. */
const ACCESS_ALGORITHMS = ["RS256"];

/** `access` mode without its settings cannot decide anything: every request gets this. */
function accessConfigError(env: Env): HttpError | null {
  const missing = [
    !env.ACCESS_TEAM_DOMAIN?.trim() && "ACCESS_TEAM_DOMAIN",
    !env.ACCESS_AUD?.trim() && "ACCESS_AUD",
  ].filter(Boolean);
  if (missing.length === 0) return null;
  return new HttpError(
    503,
    "auth_misconfigured",
    `AUTH_MODE=access needs ${missing.join(" and ")} (the Access team domain, e.g. myteam.cloudflareaccess.com, and the application's AUD tag); stemtrace refuses every request until they are set`,
  );
}

async function verifyAccess(env: Env, token: string): Promise<JWTPayload> {
  const team = env.ACCESS_TEAM_DOMAIN!.trim();
  const issuer = team.startsWith("https://")
    ? team.replace(/\/+$/, "")
    : `https://${team.replace(/\/+$/, "")}`;
  let jwks = jwksByTeam.get(issuer);
  if (!jwks) {
    jwks = createRemoteJWKSet(new URL(`${issuer}/cdn-cgi/access/certs`));
    jwksByTeam.set(issuer, jwks);
  }
  try {
    // Keys come only from the team's own certs URL: jose never follows a token's jku or trusts an
    // embedded jwk here. A token without exp would be valid forever, so exp is required.
    const { payload } = await jwtVerify(token, jwks, {
      issuer,
      audience: env.ACCESS_AUD!.trim(),
      algorithms: ACCESS_ALGORITHMS,
      requiredClaims: ["exp"],
    });
    return payload;
  } catch {
    throw new HttpError(403, "forbidden", "the Cloudflare Access token is invalid or expired");
  }
}

/** Resolves the caller or throws 401/403. `need` is what the route requires. */
export async function authenticate(env: Env, req: Request, need: "read" | "ingest"): Promise<Caller> {
  const url = new URL(req.url);
  const mode = authMode(env, url);
  if (mode === "local" || mode === "none") return { kind: "local" };
  if (mode === "unconfigured")
    throw new HttpError(
      401,
      "auth_not_configured",
      "stemtrace refuses requests until auth is configured: set AUTH_MODE to 'access' (Cloudflare Access) or 'token' (INGEST_TOKEN), or to 'none' on purpose",
    );
  if (mode === "access") {
    const config = accessConfigError(env);
    if (config) throw config;
  }
  const bearer = req.headers.get("Authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  if (bearer && env.INGEST_TOKEN) {
    if (timingSafeEqual(bearer, env.INGEST_TOKEN)) return { kind: "service", name: "ingest-token" };
    throw new HttpError(403, "forbidden", "the bearer token is not valid");
  }
  if (mode === "token")
    throw new HttpError(401, "unauthorized", "send Authorization: Bearer <INGEST_TOKEN> (AUTH_MODE=token)");
  const assertion = req.headers.get("Cf-Access-Jwt-Assertion");
  if (!assertion)
    throw new HttpError(
      401,
      "unauthorized",
      "sign in through Cloudflare Access (no Cf-Access-Jwt-Assertion header)",
    );
  const payload = await verifyAccess(env, assertion);
  if (typeof payload.email === "string") {
    if (need === "ingest")
      throw new HttpError(
        403,
        "forbidden",
        "people may read; only service tokens or the ingest token may ingest",
      );
    return { kind: "person", email: payload.email };
  }
  if (typeof payload.common_name === "string") return { kind: "service", name: payload.common_name };
  throw new HttpError(403, "forbidden", "the Access token names neither a person nor a service token");
}

export const requireAuth = (need: "read" | "ingest") =>
  createMiddleware<{ Bindings: Env; Variables: { caller: Caller } }>(async (c, next) => {
    c.set("caller", await authenticate(c.env, c.req.raw, need));
    await next();
  });
