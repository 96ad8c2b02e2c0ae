/**
 * The security headers, one source for both the Worker's responses (worker/edge.ts) and the static
 * assets' `_headers` file (web/vite.config.ts writes it at build time). Pure: no Workers imports.
 */

/**
 * The SPA's policy: every script, style, worker and connection from this origin only — no inline
 * script or style (the app has none; React sets styles through the DOM, which CSP allows), no
 * eval, no framing. `data:` images are the inline favicon. `connect-src 'self'` covers the same
 * host's ws:/wss: sockets (CSP Level 3; every current browser).
 */
export const APP_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** API responses are data, never documents: nothing may load from them, nothing may frame them. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** One year, as browsers' preload lists expect; sent only over a non-loopback host. */
export const HSTS = "max-age=31536000; includeSubDomains";

export const COMMON_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
};

/**
 * The `_headers` file for Workers static assets (https://developers.cloudflare.com/workers/static-assets/headers/)
 * and for the same build published to Pages (https://developers.cloudflare.com/pages/configuration/headers/):
 * both read this format.
 * HSTS is included: the file cannot tell local from deployed, and browsers ignore HSTS received
 * over plain HTTP (RFC 6797 §8.1), which is how `wrangler dev` serves.
 */
export function staticHeadersFile(): string {
  const all = { "Content-Security-Policy": APP_CSP, ...COMMON_HEADERS, "Strict-Transport-Security": HSTS };
  return [
    "/*",
    ...Object.entries(all).map(([k, v]) => `  ${k}: ${v}`),
    // Pages adds `Access-Control-Allow-Origin: *` to every static asset by default; Workers static
    // assets add none. `! Name` removes a header in both (docs/deploy.md, Pages as the UI host).
    "  ! Access-Control-Allow-Origin",
    // Files under /assets/ carry a content hash in their name: browsers may keep them for a year.
    "/assets/*",
    "  Cache-Control: public, max-age=31536000, immutable",
    "",
  ].join("\n");
}
