/**
 * The TraceGraph objects of the configured layout (TRACE_SHARDS from the vitest config): which
 * object holds a trace, and `settle()`, which flushes every shard so that the index has what was
 * ingested (reports are coalesced to one per flush interval in production).
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { shardCount, shardNames, traceObjectName } from "../../durable-objects/shards";

export const shards = shardCount(env);

/** The stub of the object that holds a trace. */
export const graphOf = (traceId: string) => env.TRACE_GRAPH.getByName(traceObjectName(traceId, shards));

/**
 * Flushes what the shards hold in memory and reports it to the index. With TRACE_SHARDS=0 the
 * suite runs with FLUSH_INTERVAL_S=0 (every ingest flushes), so there is nothing to do.
 */
export async function settle(): Promise<void> {
  if (shards === 0) return;
  await Promise.all(shardNames(shards).map((name) => env.TRACE_GRAPH.getByName(name).flush()));
}

/**
 * Runs the whole-graph checks (NOT_RUN, chain_stopped, chord_never_fired) of these traces now,
 * instead of GRAPH_CHECK_DELAY_S later from the alarm, then reports to the index.
 */
export async function checkGraphs(traceIds: string[]): Promise<void> {
  for (const traceId of new Set(traceIds)) {
    const stub = graphOf(traceId);
    await stub.flush();
    await runInDurableObject(stub, async (_obj: unknown, state) => {
      state.storage.sql.exec("UPDATE deadlines SET due_at = 0 WHERE key = ?", `graph_check:${traceId}`);
      await state.storage.setAlarm(Date.now());
    });
    await runDurableObjectAlarm(stub);
    await stub.flush();
  }
}
