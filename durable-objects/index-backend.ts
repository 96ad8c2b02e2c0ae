/**
 * Which index serves the list, lookups and statistics: the TraceIndex object (default, nothing to
 * configure), or Upstash Redis when UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are both
 * set. Every use of the index (Worker routes, TraceGraph reports and retention, the Fleet) goes
 * through `indexBackend(env)`. The `/api/live` sockets stay in the TraceIndex object either way.
 */
import { INDEX_NAME, numberVar, type Env } from "./env";
import type { IndexBackend } from "./trace-index";
import { UpstashIndex, type IndexHealth } from "./upstash-index";

export type IndexBackendName = "durable-object" | "upstash";

export function indexBackendName(env: Env): IndexBackendName {
  return env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN ? "upstash" : "durable-object";
}

/** The index object's stub: the default backend, and the `/api/live` hub with either backend. */
export const indexObject = (env: Env) => env.INDEX.getByName(INDEX_NAME);

export function indexBackend(env: Env): IndexBackend {
  if (indexBackendName(env) === "upstash")
    return new UpstashIndex({
      url: env.UPSTASH_REDIS_REST_URL!,
      token: env.UPSTASH_REDIS_REST_TOKEN!,
      retentionDays: numberVar(env.RETENTION_DAYS, 7) || 7,
    });
  // The stub's RPC methods are the object's IndexBackend methods.
  return indexObject(env) as unknown as IndexBackend;
}

/** For `/api/health`: Upstash is pinged (degraded with the reason when it does not answer). */
export async function indexHealth(env: Env): Promise<IndexHealth> {
  const backend = indexBackend(env);
  return backend instanceof UpstashIndex ? backend.health() : { degraded: false };
}
