/**
 * Time-travel replay (`?at=`) of a 10,000-task trace (50,000 events) inside workerd, beside the
 * live snapshot of the same trace: what `?at=` costs over the snapshot it replaces, at the middle
 * of the trace and after its end (every event applied). Through the API's path (one JSON string
 * over RPC; no HTTP).
 * Run: node_modules/.bin/node node_modules/vitest/vitest.mjs run --config bench/workers/vitest.config.ts replay --reporter=default
 */
import { env, runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import { interleave, syntheticTrace } from "../synthetic";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(read: () => Promise<string | null>, nodes: (n: number) => boolean) {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const json = await read();
    times.push(performance.now() - t0);
    if (!json || !nodes((JSON.parse(json) as { nodes: unknown[] }).nodes.length))
      throw new Error("unexpected node count");
    bytes = json.length;
  }
  return { median_ms: Math.round(median(times)), max_ms: Math.round(Math.max(...times)), bytes };
}

it("replay of a 10,000-task trace, beside its live snapshot", async () => {
  const events = interleave(syntheticTrace("replay10k", 10_000));
  const stub = env.TRACE_GRAPH.getByName("replay-bench");
  await runInDurableObject(stub, async (graph: TraceGraph) => {
    for (let i = 0; i < events.length; i += 1000)
      await graph.ingest(JSON.stringify(events.slice(i, i + 1000)));
    await graph.flush();
  });
  const ts = events.map((e) => e.ts).sort((a, b) => a - b);
  const middle = ts[Math.floor(ts.length / 2)]!;
  const end = ts[ts.length - 1]! + 1;
  const live = await time(
    () => stub.snapshotJson("replay10k"),
    (n) => n === 10_000,
  );
  const atMiddle = await time(
    () => stub.snapshotAtJson("replay10k", middle),
    (n) => n > 0 && n <= 10_000,
  );
  const atEnd = await time(
    () => stub.snapshotAtJson("replay10k", end),
    (n) => n === 10_000,
  );
  console.log(
    `BENCH ${JSON.stringify({ name: "replay10k", tasks: 10_000, events: events.length, live, at_middle: atMiddle, at_end: atEnd, via: "RPC stub.snapshotJson() / snapshotAtJson()" })}`,
  );
});
