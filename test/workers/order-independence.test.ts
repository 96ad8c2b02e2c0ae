/**
 * The same property as test/node/order-independence.test.ts, through the TraceGraph Durable Object
 * itself: random permutations with duplicates, split into random batches, give the same snapshot
 * and the same open anomalies, for every recorded scenario. The whole-graph check (NOT_RUN,
 * chain_stopped, chord_never_fired) runs after every batch, as the alarm would between deliveries.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { TraceSnapshot } from "../../shared/api";
import { traceKeyOf, type TaskEvent } from "../../shared/wire";
import { scenarios, taskEvents } from "./scenarios";

let run = 0;

type Outcome = { graph: Omit<TraceSnapshot, "seq" | "summary">; open: string[] };

async function outcomeAfter(traceId: string, batches: TaskEvent[][]): Promise<Outcome> {
  const stub = env.TRACE_GRAPH.getByName(`perm-${run++}`);
  for (const batch of batches) {
    await stub.ingest(JSON.stringify(batch));
    await stub.flush();
    // A graph check that is due runs now, between this delivery and the next.
    const due = await runInDurableObject(stub, async (_obj: unknown, state) => {
      const n = state.storage.sql.exec(
        "UPDATE deadlines SET due_at = 0 WHERE kind = 'graph_check'",
      ).rowsWritten;
      if (n > 0) await state.storage.setAlarm(Date.now());
      return n > 0;
    });
    if (due) await runDurableObjectAlarm(stub);
  }
  const snap = await stub.snapshot(traceId);
  if (!snap) throw new Error("no snapshot");
  const { seq: _seq, summary: _summary, ...graph } = snap;
  const open = (await stub.anomalyList(traceId))
    .filter((a) => a.resolved_at === null)
    .map((a) => `${a.kind}:${a.task_id}`)
    .sort();
  return { graph, open };
}

/** Each scenario's first trace (most hold one), if it has more than one event to reorder. */
const cases = scenarios
  .map((s) => {
    const events = taskEvents(s);
    const traceId = events[0] ? traceKeyOf(events[0]) : null;
    return { name: s.name, traceId, trace: events.filter((e) => traceKeyOf(e) === traceId) };
  })
  .filter(
    (c): c is { name: string; traceId: string; trace: TaskEvent[] } =>
      c.traceId !== null && c.trace.length > 1,
  );

describe("TraceGraph applies events idempotently and in any order (graph and anomalies)", () => {
  it("covers every recorded scenario", () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });
  for (const { name, traceId, trace } of cases) {
    it(name, async () => {
      const expected = await outcomeAfter(traceId, [trace]);
      await fc.assert(
        fc.asyncProperty(
          fc.shuffledSubarray(trace, { minLength: trace.length, maxLength: trace.length }),
          fc.array(fc.nat({ max: trace.length - 1 }), { maxLength: 5 }),
          fc.integer({ min: 1, max: 6 }),
          async (shuffled, dupes, batchSize) => {
            const all = [...shuffled, ...dupes.map((i) => shuffled[i]!)];
            const batches: TaskEvent[][] = [];
            for (let i = 0; i < all.length; i += batchSize) batches.push(all.slice(i, i + batchSize));
            expect(await outcomeAfter(traceId, batches)).toEqual(expected);
          },
        ),
        { numRuns: 10 },
      );
    });
  }
});
