/**
 * The same property as test/node/order-independence.test.ts, through the TraceGraph Durable Object
 * itself: random permutations with duplicates, split into random batches, give the same snapshot.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { TraceSnapshot } from "../../shared/api";
import { traceKeyOf, type TaskEvent } from "../../shared/wire";
import { scenario, taskEvents } from "./scenarios";

let run = 0;

async function snapshotAfter(traceId: string, batches: TaskEvent[][]): Promise<Omit<TraceSnapshot, "seq" | "summary">> {
  const stub = env.TRACE_GRAPH.getByName(`perm-${run++}`);
  for (const batch of batches) await stub.ingest(JSON.stringify(batch));
  const snap = await stub.snapshot(traceId);
  if (!snap) throw new Error("no snapshot");
  const { seq: _seq, summary: _summary, ...graph } = snap;
  return graph;
}

describe("TraceGraph applies events idempotently and in any order", () => {
  for (const name of ["04_retry_exhausted", "07_chord", "09a_chain_with_group", "10a_chord_header_fails", "11c_revoke_terminate_running", "15b_link_error_old_style"]) {
    it(name, async () => {
      const events = taskEvents(scenario(name));
      const traceId = traceKeyOf(events[0]!);
      const trace = events.filter((e) => traceKeyOf(e) === traceId);
      const expected = await snapshotAfter(traceId, [trace]);
      await fc.assert(
        fc.asyncProperty(
          fc.shuffledSubarray(trace, { minLength: trace.length, maxLength: trace.length }),
          fc.array(fc.nat({ max: trace.length - 1 }), { maxLength: 5 }),
          fc.integer({ min: 1, max: 6 }),
          async (shuffled, dupes, batchSize) => {
            const all = [...shuffled, ...dupes.map((i) => shuffled[i]!)];
            const batches: TaskEvent[][] = [];
            for (let i = 0; i < all.length; i += batchSize) batches.push(all.slice(i, i + batchSize));
            expect(await snapshotAfter(traceId, batches)).toEqual(expected);
          },
        ),
        { numRuns: 15 },
      );
    });
  }
});
