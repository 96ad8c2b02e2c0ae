/**
 * Where a trace lives. Traces are placed on `TRACE_SHARDS` TraceGraph objects by a stable hash of
 * the trace key, as Temporal places workflows on history shards: one ingest batch of independent
 * tasks then costs one call per shard instead of one per trace. `TRACE_SHARDS=0` is the literal
 * one-object-per-trace layout (the object is named by the trace key, as before shards existed).
 *
 * The placement is a contract: changing the hash or the names moves every trace. Benchmarks that
 * cannot import this file (bench/trace-shards.mjs) re-implement it from this comment:
 * FNV-1a 32-bit over the key's UTF-8 bytes, modulo the shard count, named `shard-<i>-of-<n>`.
 */
import { numberVar, type Env } from "./env";

/** The default: fits the Free plan's 50 subrequests per request with room for the index and fleet (README, docs/scale.md). */
export const DEFAULT_TRACE_SHARDS = 16;
/** More shards than this would break the Free plan's 50 subrequests per ingest request. */
export const MAX_TRACE_SHARDS = 40;

const utf8 = new TextEncoder();

/** FNV-1a, 32 bits: stable across runtimes and releases (never use a runtime's own string hash). */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of utf8.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The configured shard count: an integer from 0 (one object per trace) to MAX_TRACE_SHARDS. */
export function shardCount(env: Pick<Env, "TRACE_SHARDS">): number {
  const n = Math.floor(numberVar(env.TRACE_SHARDS, DEFAULT_TRACE_SHARDS));
  return Math.min(n, MAX_TRACE_SHARDS);
}

/** The name of the TraceGraph object that holds a trace. */
export function traceObjectName(traceKey: string, shards: number): string {
  return shards === 0 ? traceKey : `shard-${fnv1a32(traceKey) % shards}-of-${shards}`; // as in shardNames
}

/** Every shard object's name (none with TRACE_SHARDS=0: those objects are named by trace keys). */
export function shardNames(shards: number): string[] {
  return Array.from({ length: shards }, (_, i) => `shard-${i}-of-${shards}`);
}

/** The stub of the TraceGraph object that holds a trace. */
export function traceGraphOf(env: Env, traceKey: string) {
  return env.TRACE_GRAPH.getByName(traceObjectName(traceKey, shardCount(env)));
}

/**
 * Traces written before shards existed live in an object named by their trace key. When sharded,
 * reads that miss fall back to it (one extra call, only on a miss) until retention ends those traces.
 */
export function legacyTraceGraphOf(env: Env, traceKey: string) {
  return shardCount(env) === 0 ? null : env.TRACE_GRAPH.getByName(traceKey);
}

/** Groups keys by the object that holds them: one call per object. */
export function groupByObject<T>(
  items: Iterable<T>,
  keyOf: (item: T) => string,
  shards: number,
): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const name = traceObjectName(keyOf(item), shards);
    const list = groups.get(name);
    if (list) list.push(item);
    else groups.set(name, [item]);
  }
  return groups;
}
