/**
 * The Access attack matrix against a locally generated JWKS: jose verifies for real; only the
 * network is replaced — the team's certs URL is answered from this test (fetch is stubbed for that
 * one URL, every other URL is recorded and refused, so a followed `jku` would show up).
 * Also: `access` mode without its settings is a 503 for every request, and `/api/health` only
 * says "ok" to callers that are not signed in.
 */
import { env as workerEnv } from "cloudflare:workers";
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Env } from "../../durable-objects/env";
import { authenticate } from "../../worker/auth";
import { HttpError } from "../../worker/errors";
import app from "../../worker/index";

const TEAM = "attack-matrix.cloudflareaccess.com";
const ISS = `https://${TEAM}`;
const AUD = "stemtrace-aud-tag";
const CERTS = `${ISS}/cdn-cgi/access/certs`;
const ATTACKER_JWKS = "https://attacker.example/jwks.json";

const accessEnv = { AUTH_MODE: "access", ACCESS_TEAM_DOMAIN: TEAM, ACCESS_AUD: AUD } as Env;

let realKey: CryptoKeyPair;
let attackerKey: CryptoKeyPair;
let realJwk: JWK;
let attackerJwk: JWK;
const otherFetches: string[] = [];
const realFetch = globalThis.fetch;

beforeAll(async () => {
  realKey = await generateKeyPair("RS256", { extractable: true });
  attackerKey = await generateKeyPair("RS256", { extractable: true });
  realJwk = { ...(await exportJWK(realKey.publicKey)), kid: "team-key-1", alg: "RS256", use: "sig" };
  attackerJwk = { ...(await exportJWK(attackerKey.publicKey)), kid: "team-key-1", alg: "RS256", use: "sig" };
  // The network: the team's certs URL serves the real public key; nothing else is reachable.
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url === CERTS) return Response.json({ keys: [realJwk] });
    otherFetches.push(url);
    return new Response("not reachable from this test", { status: 599 });
  });
});

afterAll(() => {
  vi.restoreAllMocks();
  expect(globalThis.fetch).toBe(realFetch);
});

const now = () => Math.floor(Date.now() / 1000);

function sign(
  payload: JWTPayload,
  key: CryptoKey = realKey.privateKey,
  header: Record<string, unknown> = {},
) {
  return new SignJWT(payload).setProtectedHeader({ alg: "RS256", kid: "team-key-1", ...header }).sign(key);
}

const good = (extra: JWTPayload = {}) => ({
  iss: ISS,
  aud: AUD,
  iat: now() - 5,
  exp: now() + 300,
  email: "ada@example.com",
  ...extra,
});

async function status(
  token: string,
  need: "read" | "ingest" = "read",
  env: Env = accessEnv,
): Promise<number> {
  const req = new Request("https://stemtrace.example.com/api/traces", {
    headers: { "Cf-Access-Jwt-Assertion": token },
  });
  try {
    await authenticate(env, req, need);
    return 200;
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

const enc = (o: unknown) => base64url.encode(JSON.stringify(o));

describe("Access tokens: the attack matrix", () => {
  it("accepts a well-formed token: a person reads, a service token ingests, a person may not ingest", async () => {
    expect(await status(await sign(good()))).toBe(200);
    expect(await status(await sign(good()), "ingest")).toBe(403);
    const service = good({ email: undefined, common_name: "svc.access" });
    expect(await status(await sign(service), "ingest")).toBe(200);
  });

  it("refuses a forged signature (the attacker's key under the team's kid)", async () => {
    expect(await status(await sign(good(), attackerKey.privateKey))).toBe(403);
  });

  it("refuses a tampered payload with the original signature", async () => {
    const [h, , s] = (await sign(good())).split(".");
    const tampered = `${h}.${enc(good({ email: "admin@example.com" }))}.${s}`;
    expect(await status(tampered)).toBe(403);
  });

  it("refuses the wrong audience and the wrong issuer", async () => {
    expect(await status(await sign(good({ aud: "another-app" })))).toBe(403);
    expect(await status(await sign(good({ iss: "https://evil.cloudflareaccess.com" })))).toBe(403);
  });

  it("refuses expired tokens and tokens not valid yet", async () => {
    expect(await status(await sign(good({ iat: now() - 7200, exp: now() - 3600 })))).toBe(403);
    expect(await status(await sign(good({ nbf: now() + 3600 })))).toBe(403);
  });

  it("refuses a token without exp (it would never expire)", async () => {
    const { exp: _dropped, ...payload } = good();
    expect(await status(await sign(payload))).toBe(403);
  });

  it("refuses alg none, with or without a signature", async () => {
    const h = enc({ alg: "none", typ: "JWT", kid: "team-key-1" });
    expect(await status(`${h}.${enc(good())}.`)).toBe(403);
    const [, , sig] = (await sign(good())).split(".");
    expect(await status(`${h}.${enc(good())}.${sig}`)).toBe(403);
  });

  it("refuses HS256 signed with the team's public key as the HMAC secret", async () => {
    const h = enc({ alg: "HS256", typ: "JWT", kid: "team-key-1" });
    const body = enc(good());
    for (const secret of [await exportSPKI(realKey.publicKey), JSON.stringify(realJwk), realJwk.n!]) {
      const key = await crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const mac = new Uint8Array(
        await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${h}.${body}`)),
      );
      expect(await status(`${h}.${body}.${base64url.encode(mac)}`)).toBe(403);
    }
  });

  it("never trusts keys named by the token: jku and embedded jwk headers", async () => {
    const jku = await sign(good(), attackerKey.privateKey, { jku: ATTACKER_JWKS });
    expect(await status(jku)).toBe(403);
    const embedded = await sign(good(), attackerKey.privateKey, {
      jwk: { kty: attackerJwk.kty, n: attackerJwk.n, e: attackerJwk.e },
    });
    expect(await status(embedded)).toBe(403);
    const kidless = await sign(good(), attackerKey.privateKey, {
      kid: undefined,
      jwk: { kty: attackerJwk.kty, n: attackerJwk.n, e: attackerJwk.e },
    });
    expect(await status(kidless)).toBe(403);
    expect(otherFetches).toEqual([]); // the jku URL was never fetched
  });

  it("refuses garbage in the header: not a JWT, empty, a JWE-shaped token", async () => {
    for (const t of ["x.y.z", "", "....", "a.b.c.d.e", `${enc({ alg: "RS256" })}.${enc(good())}`])
      expect(await status(t)).toBeGreaterThanOrEqual(401);
  });
});

describe("access mode without its settings", () => {
  const cases: Array<[string, Partial<Env>]> = [
    ["no team domain, no AUD", {}],
    ["no AUD", { ACCESS_TEAM_DOMAIN: TEAM }],
    ["no team domain", { ACCESS_AUD: AUD }],
  ];
  for (const [label, vars] of cases)
    it(`answers 503 with what is missing for every request (${label})`, async () => {
      const env = {
        ...workerEnv,
        AUTH_MODE: "access",
        ACCESS_TEAM_DOMAIN: undefined,
        ACCESS_AUD: undefined,
        ...vars,
      } as Env;
      const token = await sign(good());
      const requests: Array<[string, RequestInit]> = [
        ["/api/traces", {}],
        ["/api/traces", { headers: { "Cf-Access-Jwt-Assertion": token } }],
        ["/api/health", {}],
        ["/api/workers", { headers: { Authorization: "Bearer whatever" } }],
        [
          "/v1/events",
          { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"events":[]}' },
        ],
      ];
      for (const [path, init] of requests) {
        const res = await app.fetch(new Request(`https://stemtrace.example.com${path}`, init), env);
        expect(res.status, path).toBe(503);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("auth_misconfigured");
        for (const name of ["ACCESS_TEAM_DOMAIN", "ACCESS_AUD"].filter((n) => !(n in vars)))
          expect(body.error.message).toContain(name);
      }
    });
});

describe("/api/health", () => {
  const tokenEnv = () => ({ ...workerEnv, AUTH_MODE: "token", INGEST_TOKEN: "health-secret" }) as Env;

  it("says only ok to a caller that is not signed in", async () => {
    for (const headers of [{}, { Authorization: "Bearer wrong" }] as Array<Record<string, string>>) {
      const res = await app.fetch(
        new Request("https://stemtrace.example.com/api/health", { headers }),
        tokenEnv(),
      );
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ ok: true });
    }
    const unconfigured = { ...workerEnv, AUTH_MODE: undefined } as Env;
    const res = await app.fetch(new Request("https://stemtrace.example.com/api/health"), unconfigured);
    expect(await res.json()).toEqual({ ok: true });
  });

  it("keeps the details for a signed-in caller (token, Access, local)", async () => {
    const signedIn = await app.fetch(
      new Request("https://stemtrace.example.com/api/health", {
        headers: { Authorization: "Bearer health-secret" },
      }),
      tokenEnv(),
    );
    expect(await signedIn.json()).toMatchObject({
      ok: true,
      version: expect.any(String),
      auth_mode: "token",
    });
    const access = { ...workerEnv, ...accessEnv } as Env;
    const person = await app.fetch(
      new Request("https://stemtrace.example.com/api/health", {
        headers: { "Cf-Access-Jwt-Assertion": await sign(good()) },
      }),
      access,
    );
    expect(await person.json()).toMatchObject({ ok: true, auth_mode: "access" });
    const forged = await app.fetch(
      new Request("https://stemtrace.example.com/api/health", {
        headers: { "Cf-Access-Jwt-Assertion": await sign(good(), attackerKey.privateKey) },
      }),
      access,
    );
    expect(await forged.json()).toEqual({ ok: true });
    const local = await app.fetch(new Request("http://127.0.0.1:8787/api/health"), {
      ...workerEnv,
      AUTH_MODE: undefined,
    } as Env);
    expect(await local.json()).toMatchObject({ ok: true, auth_mode: "none", version: expect.any(String) });
  });
});
