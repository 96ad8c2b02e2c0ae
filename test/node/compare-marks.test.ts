/** How the trace page marks a task while comparing runs (web/src/components/compare-marks.ts). */
import { describe, expect, it } from "vitest";
import type { StepDiff } from "../../shared/api";
import { diffStep, measure } from "../../shared/diff";
import { markOf, marksOf, ratioText, toneOf } from "../../web/src/components/compare-marks";

const values = (runtime: number | null, state: StepDiff["state_now"] = "SUCCESS") => ({
  key: "k",
  name: "app.add",
  task_id: "t",
  state: state!,
  runtime_ms: runtime,
  queue_wait_ms: 5,
  retries: 0,
});

describe("compare marks", () => {
  it("grade slower steps warm and faster ones cool, with a band for about the same", () => {
    expect(toneOf(null, null)).toBeNull();
    expect(toneOf(0.5, 2)).toBe("same"); // under a millisecond
    expect(toneOf(5, 1.05)).toBe("same");
    expect(toneOf(20, 1.2)).toBe("slower-1");
    expect(toneOf(60, 1.6)).toBe("slower-2");
    expect(toneOf(300, 4)).toBe("slower-3");
    expect(toneOf(-20, 0.85)).toBe("faster-1");
    expect(toneOf(-50, 0.5)).toBe("faster-2");
    expect(toneOf(-900, 0.1)).toBe("faster-3");
    // From nothing (then = 0): no ratio, still slower.
    expect(toneOf(10, null)).toBe("slower-3");
  });

  it("put flags before the delta, and label the change", () => {
    expect(markOf(diffStep(values(4, "FAILURE"), values(4)), "runtime")?.tone).toBe("failed");
    expect(markOf(diffStep(values(null, "NOT_RUN"), values(4)), "runtime")?.tone).toBe("not-run");
    expect(markOf(diffStep(values(4), undefined), "runtime")?.tone).toBe("added");
    const slower = markOf(diffStep(values(2500), values(500)), "runtime")!;
    expect(slower).toMatchObject({ tone: "slower-3", label: "+2.00 s" });
    expect(slower.detail).toContain("×5.00");
    expect(markOf(diffStep(values(2500), values(500)), "queue_wait")?.tone).toBe("same");
    expect(ratioText(measure(2000, 4).ratio!)).toBe("×0.002");
  });

  it("mark only the tasks of this run", () => {
    const marks = marksOf(
      {
        steps: [diffStep(values(4), values(8)), diffStep(undefined, values(8))],
      } as Parameters<typeof marksOf>[0],
      "runtime",
    );
    expect([...marks.keys()]).toEqual(["t"]);
  });
});
