/** Auth: local mode on loopback, fail closed elsewhere, the ingest token, Access headers required. */
import { describe, expect, it } from "vitest";
import type { Env } from "../../durable-objects/env";
import { authenticate, authMode, timingSafeEqual } from "../../worker/auth";
import { HttpError } from "../../worker/errors";

const env = (vars: Partial<Env>) => vars as Env;
const req = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

describe("auth", () => {
  it("is off on localhost when AUTH_MODE is unset (wrangler dev), and fails closed anywhere else", async () => {
    expect(authMode(env({}), new URL("http://127.0.0.1:8787/api/traces"))).toBe("local");
    expect(authMode(env({}), new URL("http://localhost/api/traces"))).toBe("local");
    expect(authMode(env({}), new URL("https://stemtrace.example.com/api/traces"))).toBe("unconfigured");
    expect(await status(authenticate(env({}), req("https://stemtrace.example.com/api/traces"), "read"))).toBe(
      401,
    );
    expect(
      await status(authenticate(env({}), req("https://stemtrace.example.com/v1/events"), "ingest")),
    ).toBe(401);
  });

  it("AUTH_MODE=none opens everything, on purpose", async () => {
    expect(
      await status(
        authenticate(env({ AUTH_MODE: "none" }), req("https://x.example.com/v1/events"), "ingest"),
      ),
    ).toBe(200);
  });

  it("AUTH_MODE=token needs the bearer token, compared in constant time", async () => {
    const e = env({ AUTH_MODE: "token", INGEST_TOKEN: "s3cret-token" });
    expect(await status(authenticate(e, req("https://x.example.com/v1/events"), "ingest"))).toBe(401);
    expect(
      await status(
        authenticate(e, req("https://x.example.com/v1/events", { Authorization: "Bearer nope" }), "ingest"),
      ),
    ).toBe(403);
    expect(
      await status(
        authenticate(
          e,
          req("https://x.example.com/v1/events", { Authorization: "Bearer s3cret-token" }),
          "ingest",
        ),
      ),
    ).toBe(200);
    expect(timingSafeEqual("abc", "abc")).toBe(true);
    expect(timingSafeEqual("abc", "abd")).toBe(false);
    expect(timingSafeEqual("abc", "abcd")).toBe(false);
  });

  it("AUTH_MODE=access needs a Cf-Access-Jwt-Assertion and its configuration", async () => {
    const configured = env({
      AUTH_MODE: "access",
      ACCESS_TEAM_DOMAIN: "team.cloudflareaccess.com",
      ACCESS_AUD: "aud",
    });
    expect(await status(authenticate(configured, req("https://x.example.com/api/traces"), "read"))).toBe(401);
    const missing = env({ AUTH_MODE: "access" });
    // A configuration error for every request, with or without a token (auth-attacks.test.ts has more).
    expect(
      await status(
        authenticate(
          missing,
          req("https://x.example.com/api/traces", { "Cf-Access-Jwt-Assertion": "x.y.z" }),
          "read",
        ),
      ),
    ).toBe(503);
    expect(await status(authenticate(missing, req("https://x.example.com/api/traces"), "read"))).toBe(503);
  });
});
