/**
 * TraceGraph inside the Workers runtime: ingest throughput with 100-event batches, snapshot time of
 * a 10,000-task trace, and a 100,000-task trace ingested in tenths (throughput of each tenth, the
 * SQLite size, and the memory of the workerd processes, sampled by the reporter in Node).
 * Run: npm run bench:graph  (prints one `BENCH {json}` line per measurement; the reporter in
 * results-reporter.ts writes them to bench/results/graph.json and bench/results/ingest.md).
 * Batches are handed over as the Worker sends them over RPC: one JSON string per trace and batch.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import { shardCount, traceObjectName } from "../../durable-objects/shards";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import { interleave, syntheticTrace } from "../synthetic";

function report(name: string, values: Record<string, unknown>) {
  console.log(`BENCH ${JSON.stringify({ name, ...values })}`);
}

function batchesOf(traceId: string, tasks: number, first = 0, batch = 100): string[] {
  const events = interleave(syntheticTrace(traceId, tasks, undefined, first));
  const out: string[] = [];
  for (let i = 0; i < events.length; i += batch) out.push(JSON.stringify(events.slice(i, i + batch)));
  return out;
}

/** The object that holds a trace in the configured layout (TRACE_SHARDS). */
const graphOf = (traceId: string) => env.TRACE_GRAPH.getByName(traceObjectName(traceId, shardCount(env)));

async function ingestBatches(traceId: string, batches: string[]) {
  const stub = graphOf(traceId);
  return runInDurableObject(stub, async (graph: TraceGraph, state) => {
    const t0 = performance.now();
    let accepted = 0;
    for (const b of batches) accepted += (await graph.ingest(b)).accepted;
    await graph.flush(); // rows written and the index told: part of the cost
    return {
      ms: performance.now() - t0,
      accepted,
      db_mib: +(state.storage.sql.databaseSize / 2 ** 20).toFixed(1),
    };
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

it("ingest throughput, 100-event batches", async () => {
  await ingestBatches("warmup", batchesOf("warmup", 200));
  const runs: number[] = [];
  for (let run = 0; run < 3; run++) {
    const { ms, accepted } = await ingestBatches(`throughput-${run}`, batchesOf(`throughput-${run}`, 4_000));
    if (accepted !== 20_000) throw new Error(`accepted ${accepted} of 20,000 events`);
    runs.push(Math.round((accepted / ms) * 1000));
  }
  report("ingest", {
    trace_tasks: 4_000,
    events_per_run: 20_000,
    batch: 100,
    runs_events_per_s: runs,
    median_events_per_s: median(runs),
  });
});

it("snapshot of a 10,000-task trace", async () => {
  await ingestBatches("snap10k", batchesOf("snap10k", 10_000));
  const stub = graphOf("snap10k");
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const snap = await stub.snapshot("snap10k");
    times.push(performance.now() - t0);
    if (!snap || snap.nodes.length !== 10_000)
      throw new Error(`expected 10,000 nodes, got ${snap?.nodes.length}`);
  }
  report("snapshot10k", {
    runs: times.length,
    median_ms: Math.round(median(times)),
    max_ms: Math.round(Math.max(...times)),
    via: "RPC stub.snapshot()",
  });
  // What GET /api/traces/:id does: the TraceGraph serializes, one string crosses the RPC.
  const jsonTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const json = await stub.snapshotJson("snap10k");
    jsonTimes.push(performance.now() - t0);
    if (!json || json.length < 1_000_000) throw new Error("expected a 10,000-task snapshot as JSON");
  }
  report("snapshot10k_json", {
    runs: jsonTimes.length,
    median_ms: Math.round(median(jsonTimes)),
    max_ms: Math.round(Math.max(...jsonTimes)),
    via: "RPC stub.snapshotJson() (the API's path)",
  });
});

it("a 100,000-task trace, ingested in tenths", async () => {
  const tasks = 100_000;
  report("big_trace_start", { tasks: 0, sample_memory: true });
  for (let i = 0; i < 10; i++) {
    // Built a tenth at a time so that the benchmark's own copy of the events stays small.
    const { ms, accepted, db_mib } = await ingestBatches(
      "big",
      batchesOf("big", tasks / 10, (i * tasks) / 10),
    );
    report("big_trace_tenth", {
      tasks: ((i + 1) * tasks) / 10,
      events_per_s: Math.round((accepted / ms) * 1000),
      db_mib,
      sample_memory: true,
    });
  }
  const stub = graphOf("big");
  const t0 = performance.now();
  const snap = await stub.snapshot("big");
  report("big_trace_snapshot", {
    ms: Math.round(performance.now() - t0),
    nodes: snap?.nodes.length ?? 0,
    truncated: snap?.truncated ?? null,
    sample_memory: true,
  });
});
