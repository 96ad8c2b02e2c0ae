/**
 * One task at a moment (`GET /api/tasks/:taskId?at=`) in a 10,000-task trace (50,000 events),
 * beside the live task detail and the replayed trace at the same moment: what the panel's replayed
 * read costs. Through the objects' RPC methods (no HTTP).
 * Run: node_modules/.bin/node node_modules/vitest/vitest.mjs run --config bench/workers/vitest.config.ts task-replay --reporter=default
 * (then restore bench/results/graph.json and ingest.md, which the reporter rewrites).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import { interleave, syntheticTrace } from "../synthetic";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(read: () => Promise<unknown>, ok: (r: unknown) => boolean) {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const r = await read();
    times.push(performance.now() - t0);
    if (!ok(r)) throw new Error(`unexpected answer: ${JSON.stringify(r).slice(0, 200)}`);
  }
  return { median_ms: Math.round(median(times)), max_ms: Math.round(Math.max(...times)) };
}

it("one task at a moment in a 10,000-task trace, beside the live detail and the replayed trace", async () => {
  const events = interleave(syntheticTrace("taskreplay10k", 10_000));
  const stub = env.TRACE_GRAPH.getByName("task-replay-bench");
  await runInDurableObject(stub, async (graph: TraceGraph) => {
    for (let i = 0; i < events.length; i += 1000)
      await graph.ingest(JSON.stringify(events.slice(i, i + 1000)));
    await graph.flush();
  });
  const ts = events.map((e) => e.ts).sort((a, b) => a - b);
  const middle = ts[Math.floor(ts.length / 2)]!;
  // A task that had started by the middle: its detail then differs from now.
  const task =
    events.find((e) => e.type === "started" && e.ts <= middle && e.ts > middle - 1)?.task_id ??
    events[0]!.task_id;
  const isDetail = (r: unknown) => r !== null && typeof r === "object" && "task" in r;
  const live = await time(() => stub.task("taskreplay10k", task), isDetail);
  const taskAt = await time(() => stub.taskAt("taskreplay10k", task, middle), isDetail);
  const traceAt = await time(
    () => stub.snapshotAtJson("taskreplay10k", middle),
    (r) => typeof r === "string",
  );
  console.log(
    `BENCH ${JSON.stringify({ name: "task-replay10k", tasks: 10_000, events: events.length, live_task: live, task_at_middle: taskAt, trace_at_middle: traceAt, via: "RPC stub.task() / taskAt() / snapshotAtJson()" })}`,
  );
});
