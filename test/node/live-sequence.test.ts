/**
 * The trace page's live sequence (web/src/api/live.ts) against a real QueryClient: frames the
 * snapshot already holds are ignored, the next one patches in (derived containers included), and
 * a frame sent between the snapshot and the socket opening is never lost: the hello that shows it
 * refetches, and so does a snapshot that lands older than a frame already seen.
 */
import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";
import type { GraphContainer, GraphNode, TraceLiveMessage, TraceSnapshot } from "../../shared/api";
import { applyTraceMessage, globalSeqGap } from "../../web/src/api/live";
import { keys } from "../../web/src/api/client";

const node = (id: string, state: GraphNode["state"]): GraphNode => ({
  id,
  name: "app.t",
  state,
  placeholder: false,
  retries: 0,
  worker: null,
  queue: null,
  parent_id: null,
  group_id: "G",
  group_index: null,
  published_at: 1,
  received_at: null,
  started_at: null,
  finished_at: null,
  eta: null,
  runtime_ms: null,
  exception_type: null,
  state_reason: null,
  anomaly: null,
});
const group = (state: GraphContainer["state"]): GraphContainer => ({
  id: "G",
  kind: "GROUP",
  state,
  members: ["a", "b"],
  callback_id: null,
  size: 2,
});
const summary = (state: GraphNode["state"]) =>
  ({
    trace_id: "T",
    state,
    root_task_id: "a",
    root_name: "app.t",
    task_count: 2,
    failure_count: 0,
    started_at: 1,
    updated_at: 2,
    finished_at: null,
    duration_ms: null,
    workers: [],
    task_names: [],
    anomaly_count: 0,
  }) satisfies TraceSnapshot["summary"];

function setup(seq: number) {
  const client = new QueryClient();
  let refetches = 0;
  client.getQueryCache().subscribe((e) => {
    if (e.type === "updated" && e.action.type === "invalidate") refetches++;
  });
  const snapshot: TraceSnapshot = {
    trace_id: "T",
    seq,
    summary: summary("STARTED"),
    nodes: [node("a", "STARTED"), node("b", "SUCCESS")],
    containers: [group("STARTED")],
    edges: [],
  };
  client.setQueryData(keys.trace("T"), snapshot);
  const newest = { current: -1 };
  const send = (msg: TraceLiveMessage) => applyTraceMessage(client, "T", msg, newest);
  return {
    client,
    send,
    refetches: () => refetches,
    snap: () => client.getQueryData<TraceSnapshot>(keys.trace("T"))!,
    newest,
  };
}

const delta = (
  seq: number,
  extra: Partial<Extract<TraceLiveMessage, { type: "delta" }>> = {},
): TraceLiveMessage => ({
  type: "delta",
  trace_id: "T",
  seq,
  nodes: [node("a", "SUCCESS")],
  containers: [group("SUCCESS")],
  structure_changed: false,
  summary: summary("SUCCESS"),
  ...extra,
});

describe("trace live sequence", () => {
  it("patches the next delta in, derived container state included, without a refetch", () => {
    const t = setup(4);
    t.send({ type: "hello", trace_id: "T", seq: 4 });
    t.send(delta(5));
    expect(t.refetches()).toBe(0);
    expect(t.snap().seq).toBe(5);
    expect(t.snap().nodes.find((n) => n.id === "a")?.state).toBe("SUCCESS");
    expect(t.snap().containers[0]?.state).toBe("SUCCESS");
    expect(t.snap().summary.state).toBe("SUCCESS");
  });

  it("a delta sent between the snapshot and the socket opening is not lost: the hello ahead of the snapshot refetches", () => {
    const t = setup(4);
    t.send({ type: "hello", trace_id: "T", seq: 5 }); // seq 5 went out before this socket existed
    expect(t.refetches()).toBe(1);
  });

  it("ignores frames the snapshot already holds; refetches on a gap or an unknown node", () => {
    const t = setup(7);
    t.send(delta(6));
    expect(t.refetches()).toBe(0);
    expect(t.snap().seq).toBe(7);
    t.send(delta(9));
    expect(t.refetches()).toBe(1);
    const u = setup(1);
    u.send(delta(2, { nodes: [node("new", "PENDING")] }));
    expect(u.refetches()).toBe(1);
  });

  it("remembers frames seen before the snapshot landed", () => {
    const client = new QueryClient();
    const newest = { current: -1 };
    applyTraceMessage(client, "T", { type: "hello", trace_id: "T", seq: 3 }, newest);
    applyTraceMessage(client, "T", delta(4), newest);
    // useTraceLive refetches a snapshot that lands with seq < newest.
    expect(newest.current).toBe(4);
  });
});

describe("/api/live sequence", () => {
  it("consecutive frames are not a gap; a jump is", () => {
    const last = { current: -1 };
    expect(globalSeqGap(last, 10)).toBe(false);
    expect(globalSeqGap(last, 11)).toBe(false);
    expect(globalSeqGap(last, 13)).toBe(true);
  });
});
