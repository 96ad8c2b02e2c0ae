/**
 * A webhook receiver on loopback for the webhooks suite, started before the suite (Node, outside
 * workerd) and handed to it with `provide`. It checks every request's signature the way the docs
 * tell receivers to (node:crypto, not stemtrace's code), answers by the trace id in the event
 * (`flaky-*`: 500 twice per delivery, then 200; `gone-*`: 410; `busy-*`: 429 with Retry-After once;
 * anything else: 200), and keeps a log the tests read at `GET /log`.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";

export const WEBHOOK_TEST_SECRET = "whsec_test_7f3a";

export interface ReceivedRequest {
  path: string;
  delivery: string | null;
  event: string | null;
  user_agent: string | null;
  signature_ok: boolean;
  signature_error: string | null;
  answered: number;
  body: unknown;
}

declare module "vitest" {
  export interface ProvidedContext {
    webhookReceiver: string;
  }
}

function verify(header: string | undefined, raw: Buffer): string | null {
  if (!header) return "no Stemtrace-Signature header";
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t)) return "no t= in the signature";
  if (Math.abs(Date.now() / 1000 - t) > 300) return "t is more than 5 minutes away";
  const expected = createHmac("sha256", WEBHOOK_TEST_SECRET).update(`${t}.`).update(raw).digest();
  const got = Buffer.from(parts.v1 ?? "", "hex");
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) return "v1 does not match";
  return null;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export default async function setup(project: TestProject) {
  const log: ReceivedRequest[] = [];
  const failures = new Map<string, number>();
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      if (req.method === "GET" && url.pathname === "/log") {
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(log));
        return;
      }
      const raw = await readBody(req);
      let body: unknown = null;
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        // logged as null: the test fails on it
      }
      const traceId = String((body as { data?: { trace_id?: unknown } } | null)?.data?.trace_id ?? "");
      const delivery = req.headers["stemtrace-delivery"]?.toString() ?? null;
      const seen = failures.get(delivery ?? "") ?? 0;
      let status = 200;
      const headers: Record<string, string> = { "Content-Type": "text/plain" };
      if (traceId.startsWith("flaky-") && seen < 2) status = 500;
      else if (traceId.startsWith("gone-")) status = 410;
      else if (traceId.startsWith("busy-") && seen < 1) {
        status = 429;
        headers["Retry-After"] = "120";
      }
      if (status !== 200) failures.set(delivery ?? "", seen + 1);
      const error = verify(req.headers["stemtrace-signature"]?.toString(), raw);
      log.push({
        path: url.pathname + url.search,
        delivery,
        event: req.headers["stemtrace-event"]?.toString() ?? null,
        user_agent: req.headers["user-agent"] ?? null,
        signature_ok: error === null,
        signature_error: error,
        answered: status,
        body,
      });
      res.writeHead(status, headers).end(status === 200 ? "ok" : `receiver says ${status}`);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  project.provide("webhookReceiver", `http://127.0.0.1:${port}`);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
