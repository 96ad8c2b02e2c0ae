/**
 * Webhooks: what stemtrace posts to the configured URLs when an anomaly opens (or resolves) and
 * when a trace finishes failed, how each request is signed, when a failed delivery is retried, and
 * the API's view of the delivery log. Pure code (no runtime bindings): the Webhooks object
 * (durable-objects/webhooks.ts), the Worker, the web UI and the tests share it.
 *
 * Signature (Stripe's scheme): `Stemtrace-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<raw body>" keyed with WEBHOOK_SECRET>`. A receiver recomputes it over the raw bytes it got,
 * compares in constant time, and refuses a `t` too far from its clock (replays).
 */
import { z } from "zod";

export const WebhookEventType = z.enum(["anomaly.opened", "anomaly.resolved", "trace.failed"]);
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/** Sent when WEBHOOK_EVENTS is unset. */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEventType[] = ["anomaly.opened", "trace.failed"];

/** Attempts per delivery (the first included): 30 s doubling, capped at 30 min, is about an hour. */
export const WEBHOOK_MAX_ATTEMPTS = 8;
const FIRST_RETRY_S = 30;
const MAX_RETRY_S = 1800;
/** One attempt waits this long for the receiver's answer (headers), then counts as a network error. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
export const WEBHOOK_USER_AGENT = "stemtrace-webhooks/1";

export interface WebhookEndpoint {
  url: string;
  /** What the log and UI show: a URL's path or query may hold a token (Slack-style URLs). */
  host: string;
}

export interface WebhookConfig {
  endpoints: WebhookEndpoint[];
  events: WebhookEventType[];
  secret: string | null;
  /** What is wrong with the settings, without echoing them (they may hold secrets). */
  problems: string[];
}

/** WEBHOOK_URLS (comma-separated), WEBHOOK_SECRET and WEBHOOK_EVENTS as read from the environment. */
export function webhookConfigFrom(env: {
  WEBHOOK_URLS?: string;
  WEBHOOK_SECRET?: string;
  WEBHOOK_EVENTS?: string;
}): WebhookConfig {
  const problems: string[] = [];
  const endpoints: WebhookEndpoint[] = [];
  const seen = new Set<string>();
  (env.WEBHOOK_URLS ?? "")
    .split(",")
    .map((s) => s.trim())
    .forEach((raw, i) => {
      if (!raw) return;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        problems.push(`WEBHOOK_URLS entry ${i + 1} is not a URL; it is skipped`);
        return;
      }
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        problems.push(`WEBHOOK_URLS entry ${i + 1} is not an http(s) URL; it is skipped`);
        return;
      }
      if (seen.has(url.href)) return;
      seen.add(url.href);
      endpoints.push({ url: url.href, host: url.host });
    });
  let events: WebhookEventType[] = [...DEFAULT_WEBHOOK_EVENTS];
  if (env.WEBHOOK_EVENTS?.trim()) {
    events = [];
    for (const name of env.WEBHOOK_EVENTS.split(",").map((s) => s.trim())) {
      if (!name) continue;
      const parsed = WebhookEventType.safeParse(name);
      if (parsed.success) {
        if (!events.includes(parsed.data)) events.push(parsed.data);
      } else
        problems.push(
          `WEBHOOK_EVENTS names an unknown event "${name.slice(0, 40)}" (known: ${WebhookEventType.options.join(", ")})`,
        );
    }
  }
  const secret = env.WEBHOOK_SECRET?.length ? env.WEBHOOK_SECRET : null;
  if (endpoints.length > 0 && !secret)
    problems.push("WEBHOOK_SECRET is not set: deliveries wait (and are retried) until it is");
  return { endpoints, events, secret, problems };
}

const hex = (buf: ArrayBuffer) =>
  [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** Hex HMAC-SHA256 of `"<t>.<body>"` keyed with the secret (WebCrypto: Workers, browsers, Node). */
export async function webhookSignature(secret: string, t: number, body: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(await crypto.subtle.sign("HMAC", key, enc.encode(`${t}.${body}`)));
}

/** The `Stemtrace-Signature` header's value. */
export async function signatureHeader(secret: string, t: number, body: string): Promise<string> {
  return `t=${t},v1=${await webhookSignature(secret, t, body)}`;
}

/** A short, stable id for one event sent to one endpoint (the `Stemtrace-Delivery` header). */
export async function deliveryId(eventId: string, url: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${eventId}\n${url}`));
  return `dlv_${hex(digest).slice(0, 24)}`;
}

/** What to do after an answer: 2xx done; 408, 429 and 5xx again later; anything else never works. */
export function classifyStatus(status: number): "succeeded" | "retry" | "failed" {
  if (status >= 200 && status < 300) return "succeeded";
  if (status === 408 || status === 429 || status >= 500) return "retry";
  return "failed";
}

/**
 * The wait before attempt `attempt + 1` after `attempt` attempts failed (1-based): 30 s doubling up
 * to 30 min, with ±25 % jitter so that deliveries that failed together do not retry together.
 */
export function retryDelayS(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** Math.max(0, attempt - 1));
  return base * (0.75 + 0.5 * random());
}

/** Retry-After as seconds from now (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function retryAfterS(value: string | null, nowS: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at / 1000 - nowS) : null;
}

/** The UI's address of a trace and of a task (paths: prefix them with your stemtrace's origin). */
export const tracePath = (traceId: string) => `/traces/${encodeURIComponent(traceId)}`;
export const taskPath = (taskId: string) => `/tasks/${encodeURIComponent(taskId)}`;

export const WebhookDeliveryStatus = z.enum(["pending", "succeeded", "failed"]);
export type WebhookDeliveryStatus = z.infer<typeof WebhookDeliveryStatus>;

/** One event to one endpoint, as the delivery log shows it. */
export const WebhookDelivery = z.object({
  id: z.string(),
  event_id: z.string(),
  type: WebhookEventType,
  /** The endpoint's host only: its path or query may hold a token. */
  endpoint: z.string(),
  trace_id: z.string().nullable(),
  status: WebhookDeliveryStatus,
  attempts: z.number().int(),
  created_at: z.number(),
  last_attempt_at: z.number().nullable(),
  /** The HTTP status of the last answer (null: no answer: network error or timeout). */
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.number().nullable(),
  delivered_at: z.number().nullable(),
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveryList = z.object({ deliveries: z.array(WebhookDelivery) });
export type WebhookDeliveryList = z.infer<typeof WebhookDeliveryList>;

/** `GET /api/webhooks`: what is configured (hosts only, never the secret or full URLs). */
export const WebhookSettings = z.object({
  endpoints: z.array(z.object({ host: z.string() })),
  events: z.array(WebhookEventType),
  secret_set: z.boolean(),
  problems: z.array(z.string()),
});
export type WebhookSettings = z.infer<typeof WebhookSettings>;
