/// <reference types="node" />
/**
 * A local OTLP/HTTP JSON receiver on loopback (vitest globalSetup, in Node): what the TraceGraph
 * shards POST to as `OTLP_ENDPOINT` in this suite. Like a collector's `otlphttp` receiver it takes
 * `POST /v1/traces` with `Content-Type: application/json` and answers 400 to a payload that is not
 * OTLP JSON (hex ids of the right lengths, nanosecond times as decimal strings, attributes as
 * `{key, value: {stringValue|intValue|doubleValue|boolValue}}`). The tests drive it over HTTP:
 * - `POST /_script` `{"trace_id", "statuses": [503, 503]}`: the next requests carrying spans of
 *   that OTLP trace id are answered with these statuses (then accepted);
 * - `GET /_received?trace_id=` → `{accepted: [{headers, body}], refused: [status...]}`.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    otlpPort: number;
  }
}

interface Received {
  headers: Record<string, string>;
  body: unknown;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const NANOS = /^\d{1,20}$/;

/** Why a body is not OTLP/JSON (what a strict collector would refuse), or null. */
export function otlpProblem(body: unknown): string | null {
  const rs = (body as { resourceSpans?: unknown }).resourceSpans;
  if (!Array.isArray(rs) || rs.length === 0) return "resourceSpans: not a non-empty array";
  for (const r of rs as { resource?: { attributes?: unknown[] }; scopeSpans?: unknown }[]) {
    if (!Array.isArray(r.resource?.attributes)) return "resource.attributes: missing";
    if (!Array.isArray(r.scopeSpans)) return "scopeSpans: missing";
    for (const ss of r.scopeSpans as { spans?: unknown }[]) {
      if (!Array.isArray(ss.spans)) return "spans: missing";
      for (const s of ss.spans as Record<string, unknown>[]) {
        if (typeof s.traceId !== "string" || !HEX32.test(s.traceId)) return `traceId: ${String(s.traceId)}`;
        if (typeof s.spanId !== "string" || !HEX16.test(s.spanId)) return `spanId: ${String(s.spanId)}`;
        if (
          s.parentSpanId !== undefined &&
          (typeof s.parentSpanId !== "string" || !HEX16.test(s.parentSpanId))
        )
          return `parentSpanId: ${String(s.parentSpanId)}`;
        for (const k of ["startTimeUnixNano", "endTimeUnixNano"])
          if (typeof s[k] !== "string" || !NANOS.test(s[k] as string)) return `${k}: ${String(s[k])}`;
        if (typeof s.name !== "string" || !s.name) return "name: missing";
        for (const a of (s.attributes as { key?: unknown; value?: Record<string, unknown> }[]) ?? []) {
          const kinds = Object.keys(a.value ?? {});
          if (typeof a.key !== "string" || kinds.length !== 1) return `attribute ${String(a.key)}: bad value`;
          if (kinds[0] === "intValue" && !/^-?\d+$/.test(String(a.value!.intValue)))
            return `attribute ${a.key}: intValue not a decimal string`;
        }
        for (const l of (s.links as { traceId?: unknown; spanId?: unknown }[]) ?? [])
          if (
            typeof l.traceId !== "string" ||
            !HEX32.test(l.traceId) ||
            typeof l.spanId !== "string" ||
            !HEX16.test(l.spanId)
          )
            return "link: bad ids";
      }
    }
  }
  return null;
}

function traceIdsOf(body: unknown): string[] {
  const out = new Set<string>();
  for (const r of (body as { resourceSpans?: { scopeSpans?: { spans?: { traceId?: string }[] }[] }[] })
    .resourceSpans ?? [])
    for (const ss of r.scopeSpans ?? []) for (const s of ss.spans ?? []) if (s.traceId) out.add(s.traceId);
  return [...out];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

let server: Server | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const accepted = new Map<string, Received[]>();
  const refused = new Map<string, number[]>();
  const scripts = new Map<string, number[]>();
  server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(body));
      };
      const text = await readBody(req);
      if (req.method === "POST" && url.pathname === "/_script") {
        const { trace_id, statuses } = JSON.parse(text) as { trace_id: string; statuses: number[] };
        scripts.set(trace_id, [...statuses]);
        return reply(200, {});
      }
      if (req.method === "GET" && url.pathname === "/_received") {
        const id = url.searchParams.get("trace_id") ?? "";
        return reply(200, { accepted: accepted.get(id) ?? [], refused: refused.get(id) ?? [] });
      }
      if (req.method !== "POST" || url.pathname !== "/v1/traces") return reply(404, { error: "not found" });
      if (!(req.headers["content-type"] ?? "").startsWith("application/json"))
        return reply(415, { error: "expected application/json" });
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return reply(400, { error: "not JSON" });
      }
      const ids = traceIdsOf(body);
      for (const id of ids) {
        const script = scripts.get(id);
        const status = script?.shift();
        if (status !== undefined) {
          refused.set(id, [...(refused.get(id) ?? []), status]);
          return reply(status, { error: "scripted failure" });
        }
      }
      const problem = otlpProblem(body);
      if (problem) {
        for (const id of ids) refused.set(id, [...(refused.get(id) ?? []), 400]);
        return reply(400, { error: problem });
      }
      const headers = Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : (v ?? "")]),
      );
      for (const id of ids) accepted.set(id, [...(accepted.get(id) ?? []), { headers, body }]);
      return reply(200, { partialSuccess: {} });
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  project.provide("otlpPort", (server.address() as AddressInfo).port);
  return async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;
  };
}
