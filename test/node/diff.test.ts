/**
 * Run diff (shared/diff.ts): step keys from the recorded canvases (chains, groups, chords,
 * spawns, retries), their independence from task ids and arrival order, and the per-step diff
 * against one run or a median of several.
 */
import { describe, expect, it } from "vitest";
import type { GraphNode } from "../../shared/api";
import {
  diffSteps,
  diffTraces,
  median,
  medianBaseline,
  stepKeys,
  stepsOf,
  type DiffGraph,
  type StepValues,
} from "../../shared/diff";
import type { TaskEvent } from "../../shared/wire";
import { graphOf, scenarios, taskEventsOf } from "./wire-fixtures";

const eventsOf = (file: string): TaskEvent[] =>
  taskEventsOf(scenarios.find((s) => s.file === `${file}.json`)!.events);
const keysOf = (file: string) => {
  const g = graphOf(eventsOf(file));
  const keys = stepKeys(g);
  return g.nodes.map((n) => keys.get(n.id));
};

/** A run as the API would load it, with edits to some nodes (by step key). */
function run(
  file: string,
  traceId: string,
  edit: Record<string, Partial<GraphNode>> = {},
  summary: Partial<DiffGraph["summary"]> = {},
): DiffGraph {
  const g = graphOf(eventsOf(file));
  const keys = stepKeys(g);
  const nodes = g.nodes.map((n) => ({ ...n, ...(edit[keys.get(n.id)!] ?? {}) }));
  return {
    trace_id: traceId,
    nodes,
    containers: g.containers,
    edges: g.edges,
    summary: { started_at: 100, duration_ms: 50, root_name: nodes[0]!.name, ...summary },
  };
}

describe("step keys", () => {
  it("follow a chain step by step", () => {
    expect(keysOf("05_chain")).toEqual([
      "app.add",
      "app.add > chain:app.add",
      "app.add > chain:app.add > chain:app.mul",
    ]);
  });

  it("place group members by group index and a chord callback under its chord", () => {
    expect(keysOf("06_group")).toEqual(["GROUP[0]:app.add", "GROUP[1]:app.add", "GROUP[2]:app.add"]);
    expect(keysOf("07_chord")).toEqual([
      "CHORD[0]:app.add",
      "CHORD[1]:app.add",
      "CHORD[2]:app.add",
      "CHORD > callback:app.tsum",
    ]);
    expect(keysOf("25a_chord_in_chain")).toEqual([
      "app.add",
      "app.add > CHORD[0]:app.add",
      "app.add > CHORD[1]:app.add",
      "app.add > CHORD > callback:app.tsum",
      "app.add > CHORD > callback:app.tsum > chain:app.add",
    ]);
  });

  it("number siblings that would share a key, in publish order", () => {
    expect(keysOf("08_parent_child")).toEqual([
      "app.spawner",
      "app.spawner > spawn:app.add",
      "app.spawner > spawn:app.add#2",
      "app.spawner > spawn:app.mul",
    ]);
  });

  it("make every retry of a task one step", () => {
    const steps = stepsOf(graphOf(eventsOf("03_retry_then_success")));
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ key: "app.flaky", retries: 2, state: "SUCCESS" });
  });

  it("are unique in every recorded trace, and the same whatever the ids and the arrival order", () => {
    const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
    let traces = 0;
    for (const s of scenarios) {
      const events = taskEventsOf(s.events);
      const byTrace = new Map<string, TaskEvent[]>();
      for (const e of events) {
        const t = e.trace_id ?? e.root_id ?? e.task_id;
        byTrace.set(t, [...(byTrace.get(t) ?? []), e]);
      }
      for (const [traceId, evs] of byTrace) {
        traces++;
        const keys = [...stepKeys(graphOf(evs)).values()];
        expect(new Set(keys).size, `${s.file} ${traceId}`).toBe(keys.length);
        // Another run: new ids (same order), events arriving backwards.
        const renamed = (
          JSON.parse(JSON.stringify(evs).replace(uuid, (id) => `${id}-x`)) as TaskEvent[]
        ).reverse();
        const again = [...stepKeys(graphOf(renamed)).values()];
        expect(again.sort(), s.file).toEqual([...keys].sort());
      }
    }
    expect(traces).toBeGreaterThan(30);
  });
});

describe("median", () => {
  it("is the middle value, or the mean of the two middle ones, ignoring unknowns", () => {
    expect(median([3, null, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([null])).toBeNull();
  });
});

describe("diff against one run", () => {
  it("measures runtime and queue-wait deltas per step and ranks the biggest", () => {
    const then = run("05_chain", "a", {
      "app.add > chain:app.add": { runtime_ms: 100 },
      "app.add > chain:app.add > chain:app.mul": { runtime_ms: 10 },
    });
    const now = run("05_chain", "b", {
      "app.add > chain:app.add": { runtime_ms: 150 },
      "app.add > chain:app.add > chain:app.mul": { runtime_ms: 400 },
    });
    const d = diffTraces(now, [then], "previous");
    const mul = d.steps.find((s) => s.key.endsWith("chain:app.mul"))!;
    expect(mul.runtime).toEqual({ then: 10, now: 400, delta_ms: 390, ratio: 40 });
    expect(mul.other_task_id).toBe(then.nodes[2]!.id);
    expect(mul.task_id).toBe(now.nodes[2]!.id);
    expect(d.steps.find((s) => s.key === "app.add > chain:app.add")!.runtime.ratio).toBe(1.5);
    // Same recording: queue waits equal, the root unchanged.
    expect(mul.queue_wait.delta_ms).toBe(0);
    expect(d.summary.changed).toBe(2);
    expect(d.summary.biggest.map((s) => s.key)).toEqual([
      "app.add > chain:app.add > chain:app.mul",
      "app.add > chain:app.add",
    ]);
    expect(d.against).toEqual({ mode: "previous", trace_ids: ["a"], started_from: 100, started_to: 100 });
  });

  it("flags newly failed and newly not-run steps first", () => {
    const then = run("05_chain", "a", { "app.add": { runtime_ms: 1 } });
    const now = run("05_chain", "b", {
      "app.add": { runtime_ms: 5000 },
      "app.add > chain:app.add": { state: "FAILURE", exception_type: "ValueError" },
      "app.add > chain:app.add > chain:app.mul": { state: "NOT_RUN", runtime_ms: null, started_at: null },
    });
    const d = diffTraces(now, [then], "trace");
    const failed = d.steps.find((s) => s.key === "app.add > chain:app.add")!;
    expect(failed).toMatchObject({ newly_failed: true, state_then: "SUCCESS", state_now: "FAILURE" });
    const notRun = d.steps.find((s) => s.key.endsWith("chain:app.mul"))!;
    expect(notRun).toMatchObject({ newly_not_run: true, newly_failed: false });
    expect(notRun.runtime.delta_ms).toBeNull();
    expect(d.summary).toMatchObject({ newly_failed: 1, newly_not_run: 1, added: 0, missing: 0 });
    // The 5 s slowdown of the root ranks after both flagged steps.
    expect(d.summary.biggest.map((s) => s.key)[2]).toBe("app.add");
  });

  it("flags a step that retried more than before", () => {
    const then = run("03_retry_then_success", "a", { "app.flaky": { retries: 0, runs: undefined } });
    const now = run("03_retry_then_success", "b");
    const [step] = diffTraces(now, [then], "trace").steps;
    expect(step).toMatchObject({ newly_retried: true, retries: { then: 0, now: 2 } });
    expect(diffTraces(then, [now], "trace").steps[0]!.newly_retried).toBe(false);
  });

  it("lists steps only in this run as added and steps only in the other as missing", () => {
    // A chord whose member 1 is app.boom now (it was app.add), so its callback did not run.
    const d = diffTraces(run("10a_chord_header_fails", "b"), [run("07_chord", "a")], "trace");
    const byKey = new Map(d.steps.map((s) => [s.key, s]));
    expect(byKey.get("CHORD[1]:app.boom")).toMatchObject({
      added: true,
      state_then: null,
      other_task_id: null,
    });
    expect(byKey.get("CHORD[1]:app.add")).toMatchObject({ missing: true, state_now: null, task_id: null });
    expect(byKey.get("CHORD > callback:app.tsum")).toMatchObject({
      newly_not_run: true,
      state_then: "SUCCESS",
    });
    expect(byKey.get("CHORD[0]:app.add")).toMatchObject({ added: false, missing: false });
    expect(d.summary).toMatchObject({ steps: 5, added: 1, missing: 1, newly_not_run: 1 });
    // The missing step comes after this run's steps.
    expect(d.steps[d.steps.length - 1]!.key).toBe("CHORD[1]:app.add");
  });

  it("compares a chain that broke with one that ran through", () => {
    const d = diffTraces(run("26_chain_step_fails", "b"), [run("05_chain", "a")], "trace");
    expect(d.summary).toMatchObject({ added: 3, missing: 2, newly_failed: 0 });
    expect(d.steps.find((s) => s.key === "app.add")).toMatchObject({ added: false, missing: false });
  });
});

describe("diff against the median of several runs", () => {
  const step = (key: string, runtime: number | null, state: StepValues["state"] = "SUCCESS"): StepValues => ({
    key,
    name: key,
    task_id: `${key}-id`,
    state,
    runtime_ms: runtime,
    queue_wait_ms: runtime === null ? null : runtime / 10,
    retries: 0,
  });

  it("takes each step's median, its most frequent state, and only the steps most runs had", () => {
    const runs = [
      [step("a", 10), step("b", 1, "FAILURE"), step("rare", 5)],
      [step("a", 30), step("b", 2)],
      [step("a", 20), step("b", 3, "FAILURE")],
    ];
    const base = medianBaseline(runs);
    expect(base.find((s) => s.key === "a")).toMatchObject({
      runtime_ms: 20,
      queue_wait_ms: 2,
      runs: 3,
      task_id: null,
    });
    expect(base.find((s) => s.key === "b")).toMatchObject({ state: "FAILURE", runtime_ms: 2 });
    expect(base.find((s) => s.key === "rare")).toBeUndefined();

    const { steps, summary } = diffSteps([step("a", 25), step("rare", 5), step("b", 2)], base);
    expect(steps.find((s) => s.key === "a")!.runtime).toEqual({
      then: 20,
      now: 25,
      delta_ms: 5,
      ratio: 1.25,
    });
    expect(steps.find((s) => s.key === "rare")).toMatchObject({ added: true });
    // b failed in most runs: succeeding now is a change of state, not a new failure.
    expect(steps.find((s) => s.key === "b")).toMatchObject({
      newly_failed: false,
      state_then: "FAILURE",
      runs: 3,
    });
    expect(summary.added).toBe(1);
  });

  it("compares whole traces with the median duration", () => {
    const runs = [10, 20, 60].map((ms, i) =>
      run(
        "05_chain",
        `r${i}`,
        { "app.add": { runtime_ms: ms } },
        { duration_ms: ms * 2, started_at: 10 + i },
      ),
    );
    const d = diffTraces(
      run("05_chain", "now", { "app.add": { runtime_ms: 40 } }, { duration_ms: 80 }),
      runs,
      "median",
    );
    expect(d.duration).toEqual({ then: 40, now: 80, delta_ms: 40, ratio: 2 });
    expect(d.steps[0]!.runtime).toMatchObject({ then: 20, now: 40 });
    expect(d.against).toMatchObject({
      mode: "median",
      trace_ids: ["r0", "r1", "r2"],
      started_from: 10,
      started_to: 12,
    });
  });
});
