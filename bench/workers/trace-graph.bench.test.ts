/**
 * TraceGraph inside the Workers runtime: ingest throughput with 100-event batches, snapshot time of
 * a 10,000-task trace, and heap growth while a 100,000-task trace is ingested.
 * Run: npm run bench:graph  (prints one JSON line per measurement, prefixed BENCH).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import { interleave, syntheticTrace } from "../synthetic";

function report(name: string, values: Record<string, number | string>) {
  console.log(`BENCH ${JSON.stringify({ name, ...values })}`);
}

async function ingestAll(traceId: string, tasks: number, batch = 100) {
  const events = interleave(syntheticTrace(traceId, tasks));
  const stub = env.TRACE_GRAPH.getByName(traceId);
  return runInDurableObject(stub, async (graph: TraceGraph) => {
    const t0 = performance.now();
    for (let i = 0; i < events.length; i += batch) await graph.ingest(traceId, events.slice(i, i + batch));
    return { ms: performance.now() - t0, events: events.length };
  });
}

it("ingest throughput, 100-event batches", async () => {
  await ingestAll("warmup", 200);
  const { ms, events } = await ingestAll("throughput", 4_000);
  report("ingest", { events, ms: Math.round(ms), events_per_s: Math.round((events / ms) * 1000) });
});

it("snapshot of a 10,000-task trace", async () => {
  await ingestAll("snap10k", 10_000);
  const stub = env.TRACE_GRAPH.getByName("snap10k");
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const snap = await stub.snapshot();
    times.push(performance.now() - t0);
    if (!snap || snap.nodes.length !== 10_000) throw new Error(`expected 10,000 nodes, got ${snap?.nodes.length}`);
  }
  times.sort((a, b) => a - b);
  report("snapshot10k", { runs: times.length, median_ms: Math.round(times[2]!), max_ms: Math.round(times[4]!) });
});
