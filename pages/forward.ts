/**
 * The Pages Function on /api/* and /v1/* (functions/api/[[path]].ts, functions/v1/[[path]].ts). It
 * hands every such request to the stemtrace Worker through the STEMTRACE service binding
 * (pages/wrangler.toml) as it came:
 *
 * - The same URL, so the Worker sees the hostname the browser used. Its Origin checks
 *   (worker/edge.ts: an Origin naming the request's own host is same-origin) pass for the UI that
 *   Pages serves, with no ALLOWED_ORIGINS entry; an Origin naming the Worker's own address does
 *   not. Under `wrangler pages dev` that host is loopback, so the Worker is in local mode exactly
 *   as under `wrangler dev`. test/node/pages.test.ts checks all three.
 * - The same headers: Cf-Access-Jwt-Assertion (the Worker verifies it against ACCESS_AUD, the AUD
 *   of the Access application on the Pages hostname), Origin, Upgrade, Content-Encoding.
 * - WebSockets (/api/live, /api/traces/:id/live): the Worker's 101 response, socket attached, is
 *   returned unchanged: the pattern the Worker itself uses to hand those sockets to its Durable
 *   Objects (https://developers.cloudflare.com/durable-objects/best-practices/websockets/), here
 *   through the fetch() of a service binding
 *   (https://developers.cloudflare.com/workers/runtime-apis/bindings/service-bindings/http/).
 *
 * The Worker's answers carry its own security headers. Pages applies `_headers` to static assets
 * only, never to Function responses (https://developers.cloudflare.com/pages/configuration/headers/),
 * so the Function's own errors set the API's headers themselves.
 */
import { errorBody } from "../worker/errors";
import { API_CSP, COMMON_HEADERS, HSTS } from "../worker/headers";

export interface PagesEnv {
  /** The stemtrace Worker (pages/wrangler.toml `[[services]]`). */
  STEMTRACE?: Fetcher;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

function failure(request: Request, status: 500 | 502, code: string, message: string): Response {
  const headers = new Headers({
    "Content-Type": "application/json",
    "Content-Security-Policy": API_CSP,
    ...COMMON_HEADERS,
  });
  if (!LOOPBACK.has(new URL(request.url).hostname)) headers.set("Strict-Transport-Security", HSTS);
  return new Response(JSON.stringify(errorBody(code, message)), { status, headers });
}

export const onRequest: PagesFunction<PagesEnv> = async ({ request, env }) => {
  if (!env.STEMTRACE)
    return failure(
      request,
      500,
      "service_binding_missing",
      "this Pages project has no STEMTRACE service binding to the stemtrace Worker: publish it with `npm run deploy:pages`, whose pages/wrangler.toml declares the binding (docs/deploy.md, Pages as the UI host)",
    );
  try {
    return await env.STEMTRACE.fetch(request);
  } catch (err) {
    return failure(
      request,
      502,
      "worker_unreachable",
      `the stemtrace Worker did not answer through the STEMTRACE service binding (${String(err)}): check that it is deployed under the name pages/wrangler.toml binds (\`npm run deploy\` first)`,
    );
  }
};
