/**
 * Property: every permutation and every duplication of a scenario's events gives the same graph
 * (DESIGN.md "TraceGraph": idempotent, order-independent). Runs over all recorded scenarios.
 */
import fc from "fast-check";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildGraph } from "../../shared/graph";
import { foldTask } from "../../shared/task-fold";
import { traceKeyOf, type Event, type TaskEvent } from "../../shared/wire";

const dir = fileURLToPath(new URL("../fixtures/wire/", import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith(".json"));

function graphOf(events: TaskEvent[]) {
  const byTask = new Map<string, TaskEvent[]>();
  for (const e of events) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), e]);
  return buildGraph([...byTask].map(([id, evs]) => foldTask(id, evs)));
}

describe("order independence", () => {
  it("has recorded scenarios to check", () => expect(files.length).toBeGreaterThanOrEqual(20));

  for (const file of files) {
    const events = (JSON.parse(readFileSync(dir + file, "utf8")) as { events: Event[] }).events.filter(
      (e): e is TaskEvent => e.kind === "task",
    );
    const traces = new Map<string, TaskEvent[]>();
    for (const e of events) traces.set(traceKeyOf(e), [...(traces.get(traceKeyOf(e)) ?? []), e]);
    for (const [traceId, traceEvents] of traces) {
      if (traceEvents.length < 2) continue;
      it(`${file.replace(".json", "")} trace ${traceId.slice(0, 8)}: any order, any duplication, same graph`, () => {
        const expected = graphOf(traceEvents);
        fc.assert(
          fc.property(
            fc.shuffledSubarray(traceEvents, { minLength: traceEvents.length, maxLength: traceEvents.length }),
            fc.array(fc.nat({ max: traceEvents.length - 1 }), { maxLength: traceEvents.length }),
            (shuffled, dupes) => {
              const withDuplicates = [...shuffled, ...dupes.map((i) => shuffled[i]!)];
              expect(graphOf(withDuplicates)).toEqual(expected);
            },
          ),
          { numRuns: 200 },
        );
      });
    }
  }
});
