import { Hono } from "hono";
import type { Env } from "../durable-objects/env";
import { api } from "./api";
import { corsAndOrigin, healthGate, jsonOnly, securityHeaders, type EdgeEnv } from "./edge";
import { errorBody, handleError } from "./errors";
import { ingest } from "./ingest";

export { TraceGraph } from "../durable-objects/trace-graph";
export { Fleet } from "../durable-objects/fleet";
export { TraceIndex } from "../durable-objects/trace-index";
export { Webhooks } from "../durable-objects/webhooks";

/** The stemtrace Worker: `/v1/*` ingestion, `/api/*` reads; everything else is the SPA (static assets). */
const app = new Hono<{ Bindings: Env & EdgeEnv }>()
  // Edge rules first (worker/edge.ts): headers on every answer, preflights and Origin, JSON-only ingest.
  .use("*", securityHeaders)
  .use("*", corsAndOrigin)
  .use("/v1/events", jsonOnly)
  .use("/api/health", healthGate)
  .route("/v1", ingest)
  .route("/api", api)
  .notFound((c) => {
    if (c.req.path.startsWith("/api/") || c.req.path.startsWith("/v1/"))
      return c.json(
        errorBody("not_found", `no route ${c.req.method} ${c.req.path}; see the README for the API`),
        404,
      );
    return c.env.ASSETS ? c.env.ASSETS.fetch(c.req.raw) : c.text("not found", 404);
  })
  .onError(handleError);

export type AppType = typeof app;
export default app;
