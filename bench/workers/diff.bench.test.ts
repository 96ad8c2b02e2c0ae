/**
 * Run diff (`GET /api/traces/:id/diff`) over 21 runs of a 1,000-task trace, inside workerd through
 * the Worker's fetch (index pages, snapshot reads, the diff): `previous` (2 snapshots read) and
 * `median` (21 snapshots read), and the pure diff (shared/diff.ts) of those snapshots alone.
 * Run: node_modules/.bin/node node_modules/vitest/vitest.mjs run --config bench/workers/diff.vitest.config.ts
 * (writes bench/results/diff.json).
 */
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";
import type { TraceDiff, TraceSnapshot } from "../../shared/api";
import { diffTraces } from "../../shared/diff";
import { shardCount, shardNames } from "../../durable-objects/shards";
import { interleave, syntheticTrace } from "../synthetic";

const TASKS = 1_000;
const RUNS = 21;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fetchApp = (path: string, init?: RequestInit) => exports.default.fetch(`http://127.0.0.1${path}`, init);

async function time(fn: () => Promise<unknown>, reps = 7) {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return { median_ms: Math.round(median(times)), max_ms: Math.round(Math.max(...times)) };
}

it(`diff of a ${TASKS}-task trace against the previous run and the median of ${RUNS - 1}`, async () => {
  const now = Math.floor(Date.now() / 1000);
  for (let r = 0; r < RUNS; r++) {
    const events = interleave(syntheticTrace(`diffbench-${r}`, TASKS, now - (RUNS - r) * 600));
    for (let i = 0; i < events.length; i += 1000) {
      const res = await fetchApp("/v1/events", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ events: events.slice(i, i + 1000) }),
      });
      expect(res.status).toBe(202);
    }
  }
  await Promise.all(shardNames(shardCount(env)).map((n) => env.TRACE_GRAPH.getByName(n).flush()));
  const last = `diffbench-${RUNS - 1}`;
  const get = async (against: string) => {
    const res = await fetchApp(`/api/traces/${last}/diff?against=${against}`);
    expect(res.status).toBe(200);
    return (await res.json()) as TraceDiff;
  };
  expect((await get("median")).against.trace_ids).toHaveLength(RUNS - 1);
  const previous = await time(() => get("previous"));
  const med = await time(() => get("median"));

  const snapshots = await Promise.all(
    Array.from(
      { length: RUNS },
      async (_, r) => (await (await fetchApp(`/api/traces/diffbench-${r}`)).json()) as TraceSnapshot,
    ),
  );
  const current = snapshots.pop()!;
  const pure = await time(async () => diffTraces(current, snapshots.reverse(), "median"));
  console.log(
    `BENCH ${JSON.stringify({
      name: "run_diff",
      tasks_per_run: TASKS,
      runs: RUNS,
      trace_shards: shardCount(env),
      previous_http: previous,
      median_http: med,
      median_pure_diff: pure,
      via: "Worker fetch GET /api/traces/:id/diff (index pages + snapshot RPCs + shared/diff.ts); pure = diffTraces on parsed snapshots",
    })}`,
  );
});
