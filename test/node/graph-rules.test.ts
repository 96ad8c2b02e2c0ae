/**
 * Graph rules for canvas shapes the recordings do not cover (CELERY.md §3: 09b, 09c, 22), built
 * from hand-written wire events in the shapes those sections describe.
 */
import { describe, expect, it } from "vitest";
import { buildGraph } from "../../shared/graph";
import { foldTask } from "../../shared/task-fold";
import type { TaskEvent } from "../../shared/wire";

let n = 0;
function ev(task_id: string, type: TaskEvent["type"], extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `e${n}`,
    kind: "task",
    type,
    ts: 1000 + n,
    seq: n,
    host: type === "published" ? null : "w@h",
    pid: 1,
    task_id,
    name: "app.t",
    ...extra,
  };
}

function graph(events: TaskEvent[]) {
  const byTask = new Map<string, TaskEvent[]>();
  for (const e of events) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), e]);
  return buildGraph([...byTask].map(([id, evs]) => foldTask(id, evs)));
}

describe("graph rules beyond the recordings", () => {
  it("09b chord header containing a chain: the chain's first step is a slot of the group", () => {
    const g = graph([
      ev("T1", "published", {
        name: "app.add",
        chain: [{ task_id: "T3", name: "app.mul", group_id: "G", group_index: 0 }],
      }),
      ev("T2", "published", {
        name: "app.add",
        group_id: "G",
        group_index: 1,
        chord_callback_id: "CB",
        chord_callback_name: "app.tsum",
      }),
      ev("T1", "succeeded"),
      ev("T3", "published", {
        name: "app.mul",
        parent_id: "T1",
        group_id: "G",
        group_index: 0,
        chord_callback_id: "CB",
        chord_callback_name: "app.tsum",
      }),
    ]);
    const chord = g.containers.find((c) => c.id === "G");
    expect(chord).toMatchObject({ kind: "CHORD", callback_id: "CB", size: 2 });
    expect(chord?.members).toEqual(["T1", "T3", "T2"]);
    expect(g.edges.find((e) => e.source === "T1" && e.target === "T3")?.kind).toBe("chain");
    expect(g.nodes.find((x) => x.id === "CB")).toMatchObject({
      placeholder: true,
      state: "PENDING",
      name: "app.tsum",
    });
  });

  it("a chain step after a failed step is NOT_RUN, and so is everything after it", () => {
    const g = graph([
      ev("A", "published", {
        chain: [
          { task_id: "B", name: "app.b" },
          { task_id: "C", name: "app.c" },
        ],
      }),
      ev("A", "started"),
      ev("A", "failed", { exception: { type: "ValueError", message: "x" } }),
    ]);
    expect(g.nodes.map((x) => [x.id, x.state])).toEqual([
      ["A", "FAILURE"],
      ["B", "NOT_RUN"],
      ["C", "NOT_RUN"],
    ]);
    expect(g.edges.map((e) => [e.source, e.target, e.kind])).toEqual([
      ["A", "B", "chain"],
      ["B", "C", "chain"],
    ]);
  });

  it("a chain step waiting behind a running step stays a PENDING placeholder", () => {
    const g = graph([ev("A", "published", { chain: [{ task_id: "B", name: "app.b" }] }), ev("A", "started")]);
    expect(g.nodes.find((x) => x.id === "B")).toMatchObject({ state: "PENDING", placeholder: true });
  });

  it("22 Task.replace: same id, new name; the original attempt is REPLACED, the node continues", () => {
    const g = graph([
      ev("R", "published", { name: "app.replacer" }),
      ev("R", "started", { name: "app.replacer" }),
      ev("R", "published", { name: "app.mul", parent_id: "R", publisher_task_id: "R" }),
      ev("R", "received", { name: "app.mul" }),
      ev("R", "started", { name: "app.mul" }),
      ev("R", "postrun", { name: "app.replacer", state: "IGNORED" }),
      ev("R", "succeeded", { name: "app.mul" }),
      ev("R", "postrun", { name: "app.mul", state: "SUCCESS" }),
    ]);
    expect(g.nodes).toHaveLength(1);
    expect(g.nodes[0]).toMatchObject({ id: "R", name: "app.mul", state: "SUCCESS" });
    expect(g.edges).toEqual([]);
  });

  it("a chord callback whose header is still running stays PENDING (not NOT_RUN) even after a failure", () => {
    const header = (id: string, i: number) =>
      ev(id, "published", {
        group_id: "G",
        group_index: i,
        chord_callback_id: "CB",
        chord_callback_name: "app.cb",
      });
    const g = graph([
      header("H0", 0),
      header("H1", 1),
      ev("H0", "failed", { exception: { type: "E", message: "m" } }),
      ev("H1", "started"),
    ]);
    expect(g.nodes.find((x) => x.id === "CB")?.state).toBe("PENDING");
    expect(g.containers[0]?.state).toBe("STARTED");
  });

  it("a received task with a future ETA is SCHEDULED", () => {
    const g = graph([
      ev("S", "published"),
      ev("S", "received", { eta: new Date((1000 + n + 60) * 1000).toISOString() }),
    ]);
    expect(g.nodes[0]?.state).toBe("SCHEDULED");
  });
});
