/**
 * Snapshot of a 10,000-task trace whose shard also holds 10,000 one-task traces, inside workerd
 * (the API's path: `snapshotJson`, one string over RPC; no HTTP). The same trace alone in its own
 * object is measured beside it, so the cost of the neighbours is what differs.
 * Run: node_modules/.bin/node node_modules/vitest/vitest.mjs run --config bench/workers/vitest.config.ts snapshot-neighbours
 */
import { env, runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import { interleave, syntheticTrace } from "../synthetic";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function fill(objectName: string, traceId: string, neighbours: number) {
  const events = interleave(syntheticTrace(traceId, 10_000));
  for (let i = 0; i < neighbours; i++) events.push(...syntheticTrace(`${traceId}-n${i}`, 1));
  await runInDurableObject(env.TRACE_GRAPH.getByName(objectName), async (graph: TraceGraph) => {
    for (let i = 0; i < events.length; i += 1000)
      await graph.ingest(JSON.stringify(events.slice(i, i + 1000)));
    await graph.flush();
  });
}

async function time(objectName: string, traceId: string) {
  const stub = env.TRACE_GRAPH.getByName(objectName);
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const json = await stub.snapshotJson(traceId);
    times.push(performance.now() - t0);
    if (!json || (JSON.parse(json) as { nodes: unknown[] }).nodes.length !== 10_000)
      throw new Error("expected 10,000 nodes");
  }
  return { median_ms: Math.round(median(times)), max_ms: Math.round(Math.max(...times)) };
}

it("snapshot of a 10,000-task trace beside 10,000 neighbours", async () => {
  await fill("snap-shard", "snapn", 10_000);
  await fill("snap-alone", "snapa", 0);
  const beside = await time("snap-shard", "snapn");
  const alone = await time("snap-alone", "snapa");
  console.log(
    `BENCH ${JSON.stringify({ name: "snapshot10k_neighbours", neighbours: 10_000, beside, alone, via: "RPC stub.snapshotJson() (the API's path)" })}`,
  );
});
