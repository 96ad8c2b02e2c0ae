import type { TraceGraph } from "./trace-graph";
import type { Fleet } from "./fleet";
import type { TraceIndex } from "./trace-index";

/** Bindings and vars from wrangler.toml (all vars are strings). */
export interface Env {
  TRACE_GRAPH: DurableObjectNamespace<TraceGraph>;
  FLEET: DurableObjectNamespace<Fleet>;
  INDEX: DurableObjectNamespace<TraceIndex>;
  ASSETS?: Fetcher;
  AUTH_MODE?: string;
  INGEST_TOKEN?: string;
  ACCESS_TEAM_DOMAIN?: string;
  ACCESS_AUD?: string;
  RETENTION_DAYS?: string;
  STUCK_PENDING_S?: string;
  STUCK_RECEIVED_S?: string;
  STUCK_STARTED_S?: string;
  /** JSON object: task name → running timeout in seconds. */
  STUCK_STARTED_BY_NAME?: string;
  STUCK_STARTED_FACTOR?: string;
  STUCK_STARTED_FLOOR_S?: string;
  STUCK_STARTED_HISTORY_RUNS?: string;
  UNREGISTERED_GRACE_S?: string;
  WORKER_LOST_MULTIPLIER?: string;
  MAX_BATCH_BYTES?: string;
  /** How many TraceGraph objects hold the traces (0: one per trace). See shards.ts. */
  TRACE_SHARDS?: string;
  /** How long a TraceGraph gathers changes before it writes task rows and reports to the index (seconds). */
  FLUSH_INTERVAL_S?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
}

/** The single index and fleet objects are addressed by these names. */
export const INDEX_NAME = "global";
export const FLEET_NAME = "global";

export function numberVar(value: string | undefined, fallback: number): number {
  const n = value === undefined || value === "" ? NaN : Number(value);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}
