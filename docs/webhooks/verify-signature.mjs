// Verify a stemtrace webhook in Node (no dependencies).
// Stemtrace-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with WEBHOOK_SECRET>
// Pass the raw request body (a Buffer or string), before any JSON parsing.
import { createHmac, timingSafeEqual } from "node:crypto";

/** Refuse signatures older (or newer) than 5 minutes: replays. */
const TOLERANCE_S = 300;

export function verifyStemtraceSignature(secret, header, rawBody, now = Date.now() / 1000) {
  const parts = Object.fromEntries(
    String(header ?? "")
      .split(",")
      .map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
  );
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(now - t) > TOLERANCE_S) return false;
  const expected = createHmac("sha256", secret).update(`${t}.`).update(rawBody).digest();
  const got = Buffer.from(parts.v1, "hex");
  return got.length === expected.length && timingSafeEqual(got, expected);
}
