/**
 * Bindings and vars. The bindings and the vars wrangler.toml sets are generated from it by
 * `npm run types` (worker-configuration.d.ts, checked in the node suite), so this file imports no
 * object class (no import cycles). Vars are read as optional strings: tests and deployments
 * override them. Added here: what wrangler.toml does not declare (secrets, optional settings).
 */
type Generated = Cloudflare.Env;
type VarName = { [K in keyof Generated]: Generated[K] extends string ? K : never }[keyof Generated];

export type Env = Omit<Generated, VarName | "ASSETS"> & { [K in VarName]?: string } & {
  ASSETS?: Fetcher;
  /** local | token | access | none (worker/auth.ts) */
  AUTH_MODE?: string;
  INGEST_TOKEN?: string;
  ACCESS_TEAM_DOMAIN?: string;
  ACCESS_AUD?: string;
  MAX_BATCH_BYTES?: string;
  /** "1" while a deployment upgraded from one object per trace still reads those objects (README). */
  LEGACY_TRACE_OBJECTS?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  /** Webhooks (README "Webhooks"): comma-separated URLs, the signing secret, the events sent. */
  WEBHOOK_URLS?: string;
  WEBHOOK_SECRET?: string;
  WEBHOOK_EVENTS?: string;
  /** OpenTelemetry export (otlp-export.ts, docs/otlp.md): off while OTLP_ENDPOINT is unset. */
  OTLP_ENDPOINT?: string;
  OTLP_HEADERS?: string;
  OTLP_SERVICE_NAME?: string;
  OTLP_SETTLE_S?: string;
  OTLP_MAX_ATTEMPTS?: string;
  OTLP_RETRY_BASE_S?: string;
  OTLP_TIMEOUT_S?: string;
  OTLP_MAX_SPANS_PER_REQUEST?: string;
};

/** The single index and fleet objects are addressed by these names. */
export const INDEX_NAME = "global";
export const FLEET_NAME = "global";
export const WEBHOOKS_NAME = "global";

export function numberVar(value: string | undefined, fallback: number): number {
  const n = value === undefined || value === "" ? NaN : Number(value);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}
