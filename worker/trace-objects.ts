/**
 * Which object to read a trace from, for every route that reads one by an id from a URL. Reads
 * never create an object or a row for an unknown id (issue 15): with shards, a read goes to the
 * trace's shard (one of a fixed set, and a read writes nothing there); an object named by the id
 * itself (TRACE_SHARDS=0, or a trace written before shards) is touched only when the index knows
 * the trace. In the per-trace layout a brand-new trace is therefore readable once the index has
 * it: within about a flush interval (FLUSH_INTERVAL_S) of its first event.
 */
import type { Env } from "../durable-objects/env";
import { indexBackend } from "../durable-objects/index-backend";
import { legacyTraceGraphOf, shardCount, traceGraphOf } from "../durable-objects/shards";

export type TraceObject = ReturnType<typeof traceGraphOf>;

/** TRACE_SHARDS=0: the trace's own object, when the index knows the trace; else null. */
export async function ownObject(env: Env, traceId: string): Promise<TraceObject | null> {
  let known: boolean;
  try {
    known = await indexBackend(env).knowsTrace(traceId);
  } catch (err) {
    // The index is unreachable (an Upstash outage): the trace's own object answers, and an object
    // never written has no schema, so a read of an unknown id still writes nothing.
    console.warn(`api: the index did not answer knowsTrace(${traceId}); reading the trace's object`, err);
    return traceGraphOf(env, traceId);
  }
  return known ? traceGraphOf(env, traceId) : null;
}

/**
 * With shards: the object of a trace written before shards (LEGACY_TRACE_OBJECTS=1, while a
 * deployment upgraded from per-trace objects still holds such traces), when the index knows it and
 * its shard does not hold it.
 */
export async function legacyObject(env: Env, traceId: string): Promise<TraceObject | null> {
  if (env.LEGACY_TRACE_OBJECTS !== "1") return null;
  const legacy = legacyTraceGraphOf(env, traceId);
  if (!legacy || !(await indexBackend(env).knowsTrace(traceId))) return null;
  return (await traceGraphOf(env, traceId).hasTrace(traceId)) ? null : legacy;
}

/**
 * `read` from the object that holds the trace: its own object (per-trace layout; `known` when the
 * caller already learned from the index that the trace exists), else its shard, then a pre-shard
 * object. Null when none holds it.
 */
export async function readTrace<T>(
  env: Env,
  traceId: string,
  read: (object: TraceObject) => Promise<T | null>,
  { known = false }: { known?: boolean } = {},
): Promise<T | null> {
  if (shardCount(env) === 0) {
    const own = known ? traceGraphOf(env, traceId) : await ownObject(env, traceId);
    return own ? read(own) : null;
  }
  const found = await read(traceGraphOf(env, traceId));
  if (found !== null) return found;
  const legacy = await legacyObject(env, traceId);
  return legacy ? read(legacy) : null;
}
