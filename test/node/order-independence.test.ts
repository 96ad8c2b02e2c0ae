/**
 * Property: every permutation and every duplication of a scenario's events gives the same graph
 * (DESIGN.md "TraceGraph": idempotent, order-independent). Runs over all recorded scenarios.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { traceKeyOf, type TaskEvent } from "../../shared/wire";
import { graphOf, scenarios, taskEventsOf } from "./wire-fixtures";

describe("order independence", () => {
  it("has recorded scenarios to check", () => expect(scenarios.length).toBeGreaterThanOrEqual(20));

  for (const { file, events: recorded } of scenarios) {
    const events = taskEventsOf(recorded);
    const traces = new Map<string, TaskEvent[]>();
    for (const e of events) traces.set(traceKeyOf(e), [...(traces.get(traceKeyOf(e)) ?? []), e]);
    for (const [traceId, traceEvents] of traces) {
      if (traceEvents.length < 2) continue;
      it(`${file.replace(".json", "")} trace ${traceId.slice(0, 8)}: any order, any duplication, same graph`, () => {
        const expected = graphOf(traceEvents);
        fc.assert(
          fc.property(
            fc.shuffledSubarray(traceEvents, {
              minLength: traceEvents.length,
              maxLength: traceEvents.length,
            }),
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
