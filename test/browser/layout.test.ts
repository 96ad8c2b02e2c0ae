/**
 * The graph layout as a pure function of a hand-made TraceSnapshot, with elk run in-process:
 * containers are parents of their members, chord edges join the header to the callback, big
 * groups and fan-outs fold, bundled edges, placeholders kept, positions deterministic.
 */
import ELK from "elkjs/lib/elk.bundled.js";
import { describe, expect, it } from "vitest";
import type { GraphContainer, GraphEdge, GraphNode, TaskState, TraceSnapshot } from "../../shared/api";
import { TraceSnapshot as TraceSnapshotSchema } from "../../shared/api";
import {
  CARD_BUDGET,
  FOLD_OVER,
  FOLD_SHOW,
  gridColumns,
  layoutGraph,
  linearLayout,
  MORE_H,
  structureKey,
  TASK_H,
  TASK_W,
  TREE_OVER,
  visibleGraph,
  type FlowNode,
} from "../../web/src/graph/layout";

const elk = new ELK();

function node(id: string, extra: Partial<GraphNode> = {}): GraphNode {
  return {
    id,
    name: `app.${id.split("-")[0]}`,
    state: "SUCCESS",
    placeholder: false,
    retries: 0,
    worker: "w1@host",
    queue: "celery",
    parent_id: null,
    group_id: null,
    group_index: null,
    published_at: 1_700_000_000,
    received_at: 1_700_000_000.001,
    started_at: 1_700_000_000.002,
    finished_at: 1_700_000_000.01,
    eta: null,
    runtime_ms: 8,
    exception_type: null,
    state_reason: null,
    anomaly: null,
    ...extra,
  };
}

function snapshot(
  nodes: GraphNode[],
  containers: GraphContainer[],
  edges: Omit<GraphEdge, "id">[],
  state: TaskState = "SUCCESS",
): TraceSnapshot {
  const s: TraceSnapshot = {
    trace_id: nodes[0]!.id,
    seq: 1,
    summary: {
      trace_id: nodes[0]!.id,
      state,
      root_task_id: nodes[0]!.id,
      root_name: nodes[0]!.name,
      task_count: nodes.length,
      failure_count: 0,
      started_at: 1_700_000_000,
      updated_at: 1_700_000_001,
      finished_at: 1_700_000_001,
      duration_ms: 1000,
      workers: ["w1@host"],
      task_names: [...new Set(nodes.map((n) => n.name ?? ""))],
      anomaly_count: 0,
    },
    nodes,
    containers,
    edges: edges.map((e) => ({ ...e, id: `${e.kind}:${e.source}->${e.target}` })),
  };
  return TraceSnapshotSchema.parse(s);
}

/** chain(root, chord([a, b, c], callback)) with the callback's successor still a placeholder. */
function chordTrace(): TraceSnapshot {
  const members = ["a-1", "b-2", "c-3"];
  return snapshot(
    [
      node("root-0"),
      ...members.map((id, i) => node(id, { group_id: "g-1", group_index: i, parent_id: "root-0" })),
      node("cb-4", { name: "app.tsum" }),
      node("next-5", {
        placeholder: true,
        state: "PENDING",
        started_at: null,
        finished_at: null,
        published_at: null,
      }),
    ],
    [{ id: "g-1", kind: "CHORD", state: "SUCCESS", members, callback_id: "cb-4", size: 3 }],
    [
      ...members.map((m) => ({ source: "root-0", target: m, kind: "chain" as const })),
      { source: "g-1", target: "cb-4", kind: "chord" },
      { source: "cb-4", target: "next-5", kind: "chain" },
    ],
  );
}

const byId = (nodes: FlowNode[]) => new Map(nodes.map((n) => [n.id, n]));

/** Every drawn task with its container: React Flow child nodes and grid cells alike. */
function drawnTasks(
  nodes: FlowNode[],
): { id: string; container: string | null; x: number; y: number; w: number; h: number; more: boolean }[] {
  const out = [];
  for (const n of nodes) {
    if (n.data.kind === "task" || n.data.kind === "more")
      out.push({
        id: n.id,
        container: n.parentId ?? null,
        x: n.position.x,
        y: n.position.y,
        w: n.width!,
        h: n.height!,
        more: n.data.kind === "more",
      });
    if (n.data.kind === "container" && n.data.cells)
      for (const c of n.data.cells)
        out.push({
          id: c.id,
          container: n.id,
          x: c.x,
          y: c.y,
          w: TASK_W,
          h: c.more ? MORE_H : TASK_H,
          more: c.more,
        });
  }
  return out;
}

describe("graph layout", () => {
  it("draws a chord as a parent node holding its header, with a chord edge to the callback", async () => {
    const layout = await layoutGraph(chordTrace(), new Set(), elk);
    const nodes = byId(layout.nodes);
    const chord = nodes.get("g-1")!;
    expect(chord.type).toBe("container");
    expect(chord.data.kind === "container" && chord.data.container.kind).toBe("CHORD");
    const tasks = new Map(drawnTasks(layout.nodes).map((t) => [t.id, t]));
    for (const m of ["a-1", "b-2", "c-3"]) expect(tasks.get(m)!.container).toBe("g-1");
    expect(tasks.get("cb-4")!.container).toBeNull();
    expect(layout.edges.find((e) => e.source === "g-1" && e.target === "cb-4")?.data?.kind).toBe("chord");
    // Parents come before their children (React Flow requires it).
    const index = new Map(layout.nodes.map((n, i) => [n.id, i]));
    for (const n of layout.nodes)
      if (n.parentId) expect(index.get(n.parentId)!).toBeLessThan(index.get(n.id)!);
    // Left to right: root, then the chord, then the callback, then the placeholder.
    expect(nodes.get("root-0")!.position.x).toBeLessThan(chord.position.x);
    expect(chord.position.x + (chord.width ?? 0)).toBeLessThan(nodes.get("cb-4")!.position.x);
    expect(nodes.get("cb-4")!.position.x).toBeLessThan(nodes.get("next-5")!.position.x);
    const placeholder = nodes.get("next-5")!;
    expect(placeholder.data.kind === "task" && placeholder.data.task.placeholder).toBe(true);
  });

  it("bundles edges from one task into many members of a container into one edge", () => {
    const v = visibleGraph(chordTrace(), new Set());
    expect(v.edges.filter((e) => e.source === "root-0")).toEqual([
      { id: "chain:root-0->g-1", source: "root-0", target: "g-1", kind: "chain", count: 3 },
    ]);
  });

  it("keeps members inside their container and never overlapping", async () => {
    const layout = await layoutGraph(chordTrace(), new Set(), elk);
    const chord = layout.nodes.find((n) => n.id === "g-1")!;
    const members = drawnTasks(layout.nodes).filter((t) => t.container === "g-1");
    expect(members).toHaveLength(3);
    for (const m of members) {
      expect(m.x).toBeGreaterThanOrEqual(0);
      expect(m.y).toBeGreaterThanOrEqual(0);
      expect(m.x + m.w).toBeLessThanOrEqual(chord.width!);
      expect(m.y + m.h).toBeLessThanOrEqual(chord.height!);
    }
    const tops = members.map((m) => m.y).sort((a, b) => a - b);
    for (let i = 1; i < tops.length; i++) expect(tops[i]! - tops[i - 1]!).toBeGreaterThanOrEqual(TASK_H);
  });

  it("folds a 500-member group to its first members and a '… N more' node that expands", async () => {
    const members = Array.from({ length: 500 }, (_, i) => `m-${i}`);
    const s = snapshot(
      [
        node("root-0"),
        ...members.map((id, i) => node(id, { group_id: "g-big", group_index: i, parent_id: "root-0" })),
      ],
      [{ id: "g-big", kind: "GROUP", state: "SUCCESS", members, callback_id: null, size: 500 }],
      members.map((m) => ({ source: "root-0", target: m, kind: "spawn" as const })),
    );
    const folded = await layoutGraph(s, new Set(), elk);
    const drawn = drawnTasks(folded.nodes);
    expect(drawn.filter((t) => !t.more)).toHaveLength(1 + FOLD_SHOW);
    expect(drawn.filter((t) => t.more)).toEqual([
      expect.objectContaining({ id: "more:g-big", container: "g-big" }),
    ]);
    const box = folded.nodes.find((n) => n.id === "g-big")!;
    expect(box.data.kind === "container" && box.data.hidden).toBe(500 - FOLD_SHOW);
    expect(folded.edges).toHaveLength(1);
    // React Flow sees the root and one box: members are drawn by the container.
    expect(folded.nodes).toHaveLength(2);
    const open = await layoutGraph(s, new Set(["g-big"]), elk);
    expect(drawnTasks(open.nodes).filter((t) => !t.more)).toHaveLength(501);
    // A grid, not a 35,000 px column.
    const openBox = open.nodes.find((n) => n.id === "g-big")!;
    expect(gridColumns(500)).toBeGreaterThan(5);
    expect(openBox.height!).toBeLessThan(5000);
  });

  it("folds a big fan-out of spawned children and reroutes their edges to the stub", () => {
    const kids = Array.from({ length: FOLD_OVER + 30 }, (_, i) => `k-${i}`);
    const s = snapshot(
      [
        node("root-0"),
        ...kids.map((id) => node(id, { parent_id: "root-0" })),
        node("grandchild-x", { parent_id: kids[kids.length - 1]! }),
      ],
      [],
      [
        ...kids.map((k) => ({ source: "root-0", target: k, kind: "spawn" as const })),
        { source: kids[kids.length - 1]!, target: "grandchild-x", kind: "spawn" },
      ],
    );
    const v = visibleGraph(s, new Set());
    expect(v.folds).toEqual([
      { id: "more:root-0:spawn", foldKey: "root-0:spawn", hidden: kids.length - FOLD_SHOW },
    ]);
    expect(v.tasks.map((t) => t.id)).toContain("grandchild-x");
    expect(v.edges.find((e) => e.target === "grandchild-x")?.source).toBe("more:root-0:spawn");
    expect(visibleGraph(s, new Set(["root-0:spawn"])).folds).toEqual([]);
  });

  /** A root spawning `groups` groups of `size` tasks each (the benchmark's "80 groups of 25"). */
  function groupsTrace(groups: number, size: number): TraceSnapshot {
    const nodes = [node("root-0")];
    const containers: GraphContainer[] = [];
    const edges: Omit<GraphEdge, "id">[] = [];
    for (let g = 0; g < groups; g++) {
      const members = Array.from({ length: size }, (_, i) => `t-${g}-${i}`);
      for (const [i, m] of members.entries()) {
        nodes.push(
          node(m, {
            group_id: `g-${g}`,
            group_index: i,
            parent_id: "root-0",
            ...(g === 40 && i === 3 ? { state: "FAILURE" as const } : {}),
          }),
        );
        edges.push({ source: "root-0", target: m, kind: "spawn" });
      }
      containers.push({
        id: `g-${g}`,
        kind: "GROUP",
        state: g === 40 ? "FAILURE" : "SUCCESS",
        members,
        callback_id: null,
        size,
      });
    }
    return snapshot(nodes, containers, edges);
  }

  it("draws 2,000 tasks in 80 groups within the card budget: later groups collapse onto one shelf", async () => {
    const s = groupsTrace(80, 25);
    const t0 = performance.now();
    const a = await layoutGraph(s, new Set(), elk);
    const ms = performance.now() - t0;
    const b = await layoutGraph(s, new Set(), elk);
    // Groups in publish order while the budget lasts (the root is one card): 19 × 25 + 1 = 476.
    const full = Math.floor((CARD_BUDGET - 1) / 25);
    expect(full).toBe(19);
    const drawn = drawnTasks(a.nodes).filter((t) => !t.more);
    expect(drawn).toHaveLength(1 + full * 25);
    expect(drawn.length).toBeLessThanOrEqual(CARD_BUDGET);
    for (let g = 0; g < full; g++) expect(a.nodes.find((n) => n.id === `g-${g}`)?.type).toBe("container");
    // The other 61 are summaries on one shelf (same parent, same edge kind), in order, with counts.
    const shelves = a.nodes.filter((n) => n.type === "shelf");
    expect(shelves).toHaveLength(1);
    const shelf = shelves[0]!;
    if (shelf.data.kind !== "shelf") throw new Error("not a shelf");
    expect(shelf.data.groups.map((g) => g.container.id)).toEqual(
      Array.from({ length: 80 - full }, (_, i) => `g-${full + i}`),
    );
    expect(shelf.data.tasks).toBe((80 - full) * 25);
    expect(shelf.data.groups.find((g) => g.container.id === "g-40")?.counts).toEqual(
      expect.arrayContaining([["FAILURE", 1]]),
    );
    expect(shelf.data.cells).toHaveLength(80 - full);
    for (const c of shelf.data.cells) expect(c.x + TASK_W).toBeLessThanOrEqual(shelf.width!);
    // React Flow: the root, 19 groups, the shelf; one edge each, the shelf's standing for 1,525.
    expect(a.nodes).toHaveLength(1 + full + 1);
    expect(a.edges).toHaveLength(full + 1);
    expect(a.edges.find((e) => e.target === shelf.id)?.data?.count).toBe((80 - full) * 25);
    expect(a.nodes.map((n) => [n.id, n.position])).toEqual(b.nodes.map((n) => [n.id, n.position]));
    console.log(`2,000-task layout (${a.engine}): ${ms.toFixed(0)} ms`);

    // Opening one group from the shelf draws it in full, beside the others.
    const one = await layoutGraph(s, new Set(["g-40"]), elk);
    expect(drawnTasks(one.nodes).filter((t) => !t.more && t.container === "g-40")).toHaveLength(25);
    const rest = one.nodes.find((n) => n.type === "shelf")!;
    expect(rest.data.kind === "shelf" && rest.data.groups.map((g) => g.container.id)).not.toContain("g-40");
    expect(rest.data.kind === "shelf" && rest.data.groups).toHaveLength(80 - full - 1);

    // "open all": every group and every task drawn.
    const all = await layoutGraph(s, new Set([shelf.id]), elk);
    expect(all.nodes.filter((n) => n.type === "shelf")).toHaveLength(0);
    expect(all.nodes).toHaveLength(1 + 80);
    expect(drawnTasks(all.nodes).filter((t) => !t.more)).toHaveLength(2001);
    expect(all.edges).toHaveLength(80);
  });

  it("lays out a large trace that is a tree as a tree: columns by depth, siblings in publish order, nothing overlapping", async () => {
    const s = groupsTrace(80, 25);
    expect(s.nodes.length).toBeGreaterThan(TREE_OVER);
    const layout = await layoutGraph(s, new Set(), {
      layout: () => Promise.reject(new Error("elk is not needed for a tree")),
    });
    expect(layout.engine).toBe("tree");
    const nodes = byId(layout.nodes);
    const root = nodes.get("root-0")!;
    const column = layout.nodes.filter((n) => n.id !== "root-0");
    expect(column.map((n) => n.id)).toEqual([
      ...Array.from({ length: 19 }, (_, g) => `g-${g}`),
      expect.stringMatching(/^shelf:/),
    ]);
    for (const n of column) expect(n.position.x).toBe(column[0]!.position.x);
    expect(column[0]!.position.x).toBeGreaterThan(root.position.x + TASK_W);
    for (let i = 1; i < column.length; i++)
      expect(column[i]!.position.y).toBeGreaterThanOrEqual(
        column[i - 1]!.position.y + column[i - 1]!.height!,
      );
    // The root is level with its first child: the first view, at the root, shows the start.
    expect(root.position.y).toBe(column[0]!.position.y);
    const last = column[column.length - 1]!;
    // Opening every group keeps it a tree: 81 boxes, still no elk.
    const all = await layoutGraph(s, new Set([last.id]), {
      layout: () => Promise.reject(new Error("no elk")),
    });
    expect(all.engine).toBe("tree");
    expect(all.nodes).toHaveLength(81);
  });

  it("draws the same boxes with the linear layout (past elk's limit), none overlapping", () => {
    const s = groupsTrace(80, 25);
    const tree = visibleGraph(s, new Set());
    const linear = linearLayout(s, tree);
    expect(linear.engine).toBe("linear");
    expect(linear.nodes.map((n) => n.id).sort()).toEqual(
      [...tree.containers.map((c) => c.container.id), "root-0", tree.shelves[0]!.id].sort(),
    );
    const boxes = linear.nodes.map((n) => ({
      x0: n.position.x,
      y0: n.position.y,
      x1: n.position.x + n.width!,
      y1: n.position.y + n.height!,
    }));
    for (const [i, a] of boxes.entries())
      for (const b of boxes.slice(i + 1))
        expect(a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0).toBe(true);
  });

  it("draws a fan-out as a comb: one trunk from the source, a tooth into each target", async () => {
    const layout = await layoutGraph(groupsTrace(80, 25), new Set(), elk);
    const fan = layout.edges.filter((e) => e.source === "root-0");
    expect(fan).toHaveLength(20);
    expect(fan.every((e) => e.type === "bus")).toBe(true);
    const trunks = fan.filter((e) => e.data?.bus !== "branch");
    // Everything is below the root (level with its first child): one trunk, down to the shelf.
    expect(trunks.map((e) => [e.data?.bus, e.target])).toEqual([["down", expect.stringMatching(/^shelf:/)]]);
    // Two targets are not a comb; nor is the chord trace's single edge per source.
    expect((await layoutGraph(chordTrace(), new Set(), elk)).edges.some((e) => e.type === "bus")).toBe(false);
  });

  it("leaves joins, small traces and nested groups to elk", async () => {
    expect((await layoutGraph(chordTrace(), new Set(), elk)).engine).toBe("elk");
    // 600 tasks where one is spawned by two others (a join): not a tree.
    const kids = Array.from({ length: 600 }, (_, i) => node(`k-${i}`, { parent_id: "root-0" }));
    const s = snapshot(
      [node("root-0"), node("a-1"), node("b-2"), node("j-3"), ...kids],
      [],
      [
        { source: "root-0", target: "a-1", kind: "chain" },
        { source: "root-0", target: "b-2", kind: "spawn" },
        { source: "a-1", target: "j-3", kind: "chain" },
        { source: "b-2", target: "j-3", kind: "spawn" },
        ...kids.map((k) => ({ source: "root-0", target: k.id, kind: "spawn" as const })),
      ],
    );
    const layout = await layoutGraph(s, new Set(), elk);
    expect(layout.engine).toBe("elk");
    const nodes = byId(layout.nodes);
    expect(nodes.get("j-3")!.position.x).toBeGreaterThan(nodes.get("a-1")!.position.x);
  });

  it("collapses nothing while the trace fits the budget", async () => {
    const a = await layoutGraph(groupsTrace(10, 25), new Set(), elk);
    expect(a.nodes.filter((n) => n.type === "shelf")).toHaveLength(0);
    expect(drawnTasks(a.nodes).filter((t) => !t.more)).toHaveLength(251);
    // Folded big groups count what they show: 20 groups of 100 show 20 each, none collapses.
    const v = visibleGraph(groupsTrace(20, 100), new Set());
    expect(v.shelves).toEqual([]);
    expect(v.containers.every((c) => !c.collapsed && c.members.length === FOLD_SHOW)).toBe(true);
  });

  it("shelves only collapsed groups entered the same way; a lone one is a folded box", () => {
    // 25 groups of 25 from root-0, then one more group spawned by another task.
    const s = groupsTrace(25, 25);
    const extra = Array.from({ length: 25 }, (_, i) => `x-${i}`);
    const t = snapshot(
      [
        ...s.nodes,
        node("other-1"),
        ...extra.map((id, i) => node(id, { group_id: "g-x", group_index: i, parent_id: "other-1" })),
      ],
      [
        ...s.containers,
        { id: "g-x", kind: "CHORD", state: "SUCCESS", members: extra, callback_id: null, size: 25 },
      ],
      [
        ...s.edges.map(({ id: _, ...e }) => e),
        { source: "root-0", target: "other-1", kind: "chain" },
        ...extra.map((m) => ({ source: "other-1", target: m, kind: "spawn" as const })),
      ],
    );
    const v = visibleGraph(t, new Set());
    expect(v.shelves.map((sh) => sh.containers.map((c) => c.id))).toEqual([
      ["g-19", "g-20", "g-21", "g-22", "g-23", "g-24"],
    ]);
    const lone = v.containers.find((c) => c.container.id === "g-x")!;
    expect(lone).toMatchObject({ collapsed: true, members: [], hidden: 25, moreId: "more:g-x" });
    expect(v.edges.find((e) => e.source === "other-1")).toMatchObject({ target: "more:g-x", count: 25 });
  });

  it("attaches a lone edge into a grid member to the container, and nests containers with inner edges", async () => {
    // Chord header of two chain slots (a1 → a2, b1 → b2): edges inside the container.
    const s = snapshot(
      [
        node("root-0"),
        node("a1-1", { group_id: "g" }),
        node("a2-2", { group_id: "g" }),
        node("b1-3", { group_id: "g" }),
        node("b2-4", { group_id: "g" }),
        node("cb-5"),
        node("x-6", { group_id: "h" }),
        node("y-7", { group_id: "h" }),
      ],
      [
        {
          id: "g",
          kind: "CHORD",
          state: "SUCCESS",
          members: ["a1-1", "a2-2", "b1-3", "b2-4"],
          callback_id: "cb-5",
          size: 2,
        },
        { id: "h", kind: "GROUP", state: "SUCCESS", members: ["x-6", "y-7"], callback_id: null, size: 2 },
      ],
      [
        { source: "a1-1", target: "a2-2", kind: "chain" },
        { source: "b1-3", target: "b2-4", kind: "chain" },
        { source: "g", target: "cb-5", kind: "chord" },
        { source: "cb-5", target: "x-6", kind: "spawn" },
      ],
    );
    const layout = await layoutGraph(s, new Set(), elk);
    const nodes = byId(layout.nodes);
    expect(nodes.get("a2-2")!.parentId).toBe("g");
    expect(nodes.get("a1-1")!.position.x).toBeLessThan(nodes.get("a2-2")!.position.x);
    expect(nodes.get("x-6")).toBeUndefined();
    expect(layout.edges.map((e) => e.id).sort()).toEqual([
      "chain:a1-1->a2-2",
      "chain:b1-3->b2-4",
      "chord:g->cb-5",
      "spawn:cb-5->h",
    ]);
    const h = nodes.get("h")!;
    expect(h.data.kind === "container" && h.data.ports).toEqual({ in: true, out: false });
  });

  it("keeps the structure key across state changes and changes it when a node appears", () => {
    const s = chordTrace();
    const patched = {
      ...s,
      nodes: s.nodes.map((n) => (n.id === "next-5" ? { ...n, state: "STARTED" as const } : n)),
    };
    expect(structureKey(patched)).toBe(structureKey(s));
    const grown = { ...s, nodes: [...s.nodes, node("late-6")] };
    expect(structureKey(grown)).not.toBe(structureKey(s));
  });
});
