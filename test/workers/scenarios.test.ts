/**
 * Every recorded Celery scenario, ingested through POST /v1/events and read back through the API,
 * checked against its ground truth (meta.json): ids, containers, edges, final states.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { TaskDetail, TraceSnapshot } from "../../shared/api";
import { traceKeyOf } from "../../shared/wire";
import { checkGraphs, settle } from "./objects";
import { expectedState, scenario, scenarios, taskEvents, type Scenario } from "./scenarios";

const base = "http://127.0.0.1";

async function ingest(events: unknown[]) {
  for (let i = 0; i < events.length; i += 100) {
    const res = await exports.default.fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: events.slice(i, i + 100) }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { rejected: unknown[] };
    expect(body.rejected).toEqual([]);
  }
  await settle();
}

function traceOf(s: Scenario, taskId: string): string {
  // A task that never sent an event (a chord callback or chain step that never ran) lives with its announcer.
  const event =
    taskEvents(s).find((e) => e.task_id === taskId) ??
    taskEvents(s).find((e) => JSON.stringify(e).includes(taskId));
  if (!event) throw new Error(`${s.name}: no event for task ${taskId}`);
  return traceKeyOf(event);
}

async function snapshotOf(traceId: string): Promise<TraceSnapshot> {
  const res = await exports.default.fetch(`${base}/api/traces/${traceId}`);
  expect(res.status).toBe(200);
  return TraceSnapshot.parse(await res.json());
}

async function graphOf(name: string, taskId: string) {
  const s = scenario(name);
  const snap = await snapshotOf(traceOf(s, taskId));
  const node = (id: string) => {
    const n = snap.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`${name}: node ${id} missing from trace ${snap.trace_id}`);
    return n;
  };
  const edge = (source: string, target: string) =>
    snap.edges.find((e) => e.source === source && e.target === target);
  return { snap, node, edge };
}

async function detailOf(taskId: string) {
  const res = await exports.default.fetch(`${base}/api/tasks/${taskId}`);
  expect(res.status).toBe(200);
  return TaskDetail.parse(await res.json());
}

beforeAll(async () => {
  expect(scenarios.length).toBeGreaterThanOrEqual(20);
  for (const s of scenarios) await ingest(s.events);
  // Graph checks run from the alarm about a second after a break: run them now.
  await checkGraphs(scenarios.flatMap((s) => taskEvents(s).map((e) => traceKeyOf(e))));
});

describe("every scenario matches its ground truth", () => {
  it.each(
    scenarios
      .filter((s) => Object.keys(s.meta.backend_states_after ?? {}).length)
      .map((s) => [s.name, s] as const),
  )("%s: final states", async (_name, s) => {
    const containerIds = new Set<string>();
    for (const [taskId, backend] of Object.entries(s.meta.backend_states_after)) {
      const announcedOnly = expectedState(s.name, taskId, backend.state) !== backend.state;
      if (!taskEvents(s).some((e) => e.task_id === taskId) && backend.state === "PENDING" && !announcedOnly) {
        containerIds.add(taskId); // a group id: never a task (CELERY.md §3, 06)
        continue;
      }
      const expected = expectedState(s.name, taskId, backend.state);
      if (expected === null) continue;
      const trace = await snapshotOf(traceOf(s, taskId));
      const node = trace.nodes.find((n) => n.id === taskId);
      expect(node, `${s.name}: ${taskId}`).toBeDefined();
      expect(node?.state, `${s.name}: ${taskId}`).toBe(expected);
    }
  });
});

describe("one summary", () => {
  it("the list and the trace page agree on every recorded trace's state and counts", async () => {
    const traceIds = [...new Set(scenarios.flatMap((s) => taskEvents(s).map((e) => traceKeyOf(e))))];
    const listed = new Map<string, TraceSnapshot["summary"]>();
    let cursor: string | null = null;
    do {
      const res = await exports.default.fetch(
        `${base}/api/traces?limit=200${cursor ? `&cursor=${cursor}` : ""}`,
      );
      const page = (await res.json()) as { traces: TraceSnapshot["summary"][]; next_cursor: string | null };
      for (const t of page.traces) listed.set(t.trace_id, t);
      cursor = page.next_cursor;
    } while (cursor);
    for (const traceId of traceIds) {
      const { summary } = await snapshotOf(traceId);
      const inList = listed.get(traceId);
      expect(inList, traceId).toBeDefined();
      const pick = (x: TraceSnapshot["summary"]) => [
        x.state,
        x.task_count,
        x.failure_count,
        x.not_run_count ?? 0,
      ];
      expect(pick(inList!), traceId).toEqual(pick(summary));
    }
  });
});

describe("graph rules on real recordings", () => {
  it("01 single success: one node, no edges, no containers", async () => {
    const { snap, node } = await graphOf("01_single_success", "d2b0bddd-04b6-47c2-bff0-5bb4d253c9e0");
    expect(snap.nodes).toHaveLength(1);
    expect(node("d2b0bddd-04b6-47c2-bff0-5bb4d253c9e0")).toMatchObject({
      state: "SUCCESS",
      name: "app.add",
      placeholder: false,
    });
    expect(snap.edges).toEqual([]);
    expect(snap.summary).toMatchObject({ state: "SUCCESS", task_count: 1, failure_count: 0 });
  });

  it("02 failure: exception and full traceback in the task detail", async () => {
    const detail = await detailOf("e6f835a4-3694-4b3b-8f7e-0a24625da7a4");
    expect(detail.task.state).toBe("FAILURE");
    expect(detail.exception?.type).toMatch(/ValueError/);
    expect(detail.exception?.message).toMatch(/boom/);
    expect(detail.traceback).toMatch(/Traceback/);
  });

  it("03 retry then success: one node, three attempts ordered by retries", async () => {
    const detail = await detailOf("a44d6bda-7b42-4cee-9b8f-e18c92bb5079");
    expect(detail.task).toMatchObject({ state: "SUCCESS", retries: 2 });
    expect(detail.attempts.map((a) => [a.retries, a.state])).toEqual([
      [0, "RETRY"],
      [1, "RETRY"],
      [2, "SUCCESS"],
    ]);
  });

  it("04 retries exhausted with overlapping attempts: FAILURE on the last attempt despite arrival order", async () => {
    const detail = await detailOf("cec57f69-730e-473d-a992-1e933d74e857");
    expect(detail.attempts.map((a) => [a.retries, a.state])).toEqual([
      [0, "RETRY"],
      [1, "RETRY"],
      [2, "FAILURE"],
    ]);
    expect(detail.exception?.type).toMatch(/KeyError/);
  });

  it("05 chain: chain edges in order, one trace", async () => {
    const [t1, t2, t3] = [
      "0844444d-c6ff-46c9-b82c-60920efd0db3",
      "74fce431-ba89-449c-ac4c-630ff1297187",
      "388c2713-973c-4c7b-8c95-0aedf05f5c75",
    ];
    const { snap, edge } = await graphOf("05_chain", t1!);
    expect(snap.nodes.map((n) => n.id).sort()).toEqual([t1, t2, t3].sort());
    expect(edge(t1!, t2!)?.kind).toBe("chain");
    expect(edge(t2!, t3!)?.kind).toBe("chain");
    expect(snap.edges).toHaveLength(2);
  });

  it("06 group: one GROUP container with its three members in one trace", async () => {
    const group = "e7f84d43-73e0-467d-a9a5-fe35ca27833e";
    const children = [
      "0e430479-e37e-4599-a660-5627cba0a87b",
      "e15871ed-97c0-4c37-aca6-0e6feb5deacd",
      "01648b24-6215-4428-86b4-08f8f72ec19d",
    ];
    const { snap } = await graphOf("06_group", children[0]!);
    expect(snap.trace_id).toBe(group);
    expect(snap.containers).toEqual([
      expect.objectContaining({ id: group, kind: "GROUP", state: "SUCCESS", callback_id: null }),
    ]);
    expect([...snap.containers[0]!.members].sort()).toEqual([...children].sort());
    expect(snap.nodes.some((n) => n.id === group)).toBe(false);
  });

  it("07 chord: CHORD container ordered by group_index, callback linked only through the header", async () => {
    const header = [
      "980cf0c5-aba0-4198-8d65-f0cc400ba427",
      "67278e89-5bc2-4280-bda3-b76219f0edb4",
      "07b6e364-f211-4951-8903-8d920f49c7b1",
    ];
    const callback = "a8a105c9-4b68-4925-8153-5ab3d922fc62";
    const group = "d1d062f7-e9fe-4c5b-b161-46ca668ebb50";
    const { snap, node, edge } = await graphOf("07_chord", header[0]!);
    expect(snap.containers).toEqual([
      { id: group, kind: "CHORD", state: "SUCCESS", members: header, callback_id: callback, size: 3 },
    ]);
    expect(node(callback).state).toBe("SUCCESS");
    expect(edge(group, callback)?.kind).toBe("chord");
    // parent_id of the callback is the last header task to finish: never an edge (CELERY.md §4.3).
    expect(snap.edges.filter((e) => e.target === callback)).toHaveLength(1);
  });

  it("08 parent spawning children: spawn edges", async () => {
    const parent = "f634bf34-2f9c-48d7-8197-40ecebf98549";
    const children = [
      "bd68b97e-46da-4a0d-a668-ec3962f25713",
      "fe243b50-e655-4ce5-b6a5-5926f6213a9c",
      "958d81d5-8f6f-4819-a46a-630be42b041f",
    ];
    const { snap, edge } = await graphOf("08_parent_child", parent);
    for (const child of children) expect(edge(parent, child)?.kind).toBe("spawn");
    expect(snap.nodes).toHaveLength(4);
  });

  it("09a chain containing a group: the group becomes a chord inside the chain", async () => {
    const first = "5adc8709-a080-47a4-b72f-56557d872262";
    // The client's GroupResult id (62aa0986…, the celery.chord signature's id) is never on a message;
    // the header group id is generated in T1's process (CELERY.md 09a).
    const group = "346acdad-4e3d-4bb2-9579-74c223891369";
    const callback = "971d4a38-bdda-418e-874e-77070ddb09c3";
    const header = ["efef779e-66fe-43eb-b8db-9d3768fde9e4", "46ad16f6-e7b1-48b2-9a47-091fe07f4423"];
    const { snap, node, edge } = await graphOf("09a_chain_with_group", first);
    expect(snap.containers).toEqual([
      { id: group, kind: "CHORD", state: "SUCCESS", members: header, callback_id: callback, size: 2 },
    ]);
    for (const h of header) expect(edge(first, h)?.kind).toBe("chain");
    expect(edge(group, callback)?.kind).toBe("chord");
    expect(edge(first, callback)).toBeUndefined();
    expect(node(callback).state).toBe("SUCCESS");
    expect(snap.nodes).toHaveLength(4);
  });

  it("09d chain ending in a group: the pre-assigned group id is the real one", async () => {
    const first = "e390d316-7731-4549-a61c-85ccc144b200";
    const group = "1714f733-4863-4528-9611-43cff4d4affc";
    const { snap, edge } = await graphOf("09d_chain_ending_in_group", first);
    expect(snap.containers).toEqual([
      expect.objectContaining({ id: group, kind: "GROUP", state: "SUCCESS" }),
    ]);
    for (const m of snap.containers[0]!.members) expect(edge(first, m)?.kind).toBe("chain");
    expect(snap.containers[0]!.members).toHaveLength(2);
  });

  it("10a chord whose header fails: callback NOT_RUN, chord FAILURE", async () => {
    const callback = "d6bbf20c-b8eb-426a-a60a-79b6a0eb50f3";
    const { snap, node } = await graphOf("10a_chord_header_fails", "f961b392-265c-4d1d-93b0-4b919fb8f053");
    expect(node(callback)).toMatchObject({ state: "NOT_RUN", placeholder: true, name: "app.tsum" });
    expect(node(callback).state_reason).toMatch(/chord header task b4fd4d1f/);
    expect(snap.containers[0]).toMatchObject({ kind: "CHORD", state: "FAILURE", callback_id: callback });
    expect(snap.summary.state).toBe("FAILURE");
  });

  it("25a chord in the middle of a chain: CHORD → callback → the next step", async () => {
    const first = "6cf33936-74c6-4e9b-a681-cf80c6a5b1b8";
    const header = ["f7536058-57ce-44f4-9d2c-a3d63398f3af", "ebb76993-8a3c-46aa-b91c-cae163d3444a"];
    const callback = "bec189b2-c8a0-401f-a9c3-5f489c0b788b";
    const last = "ba411506-0b0d-41ec-b1c0-cefcca41145f";
    const { snap, edge } = await graphOf("25a_chord_in_chain", first);
    const [chord] = snap.containers;
    expect(snap.containers).toHaveLength(1);
    expect(chord).toMatchObject({
      kind: "CHORD",
      state: "SUCCESS",
      members: header,
      callback_id: callback,
      size: 2,
    });
    for (const h of header) expect(edge(first, h)?.kind).toBe("chain");
    expect(edge(chord!.id, callback)?.kind).toBe("chord");
    expect(edge(callback, last)?.kind).toBe("chain");
    expect(snap.edges.filter((e) => e.kind === "spawn")).toEqual([]);
    expect(snap.summary).toMatchObject({ state: "SUCCESS", task_count: 5, not_run_count: 0 });
    // The callback's origin is its chord, not the header task that happened to finish last.
    const detail = await detailOf(callback);
    expect(detail.parent).toMatchObject({
      task_id: chord!.id,
      kind: "chord",
      container: { kind: "CHORD", size: 2 },
    });
    expect(detail.task.parent_id).toBe(chord!.id);
  });

  it("25b header fails in a chord inside a chain: callback and next step NOT_RUN, Celery's own error on the task", async () => {
    const boom = "a1a8bd03-45c2-497a-8f66-01f73789be5a";
    const callback = "d35e2562-5c3f-4d47-a4c1-29b907948598";
    const last = "7261d47d-6380-45a7-be5d-a2e190e1a3a4";
    const { snap, node, edge } = await graphOf("25b_chord_in_chain_header_fails", boom);
    expect(node(boom).state).toBe("FAILURE");
    expect(node(boom).exception_type).toBe("TypeError");
    expect(node(callback)).toMatchObject({ state: "NOT_RUN", placeholder: true, name: "app.tsum" });
    expect(node(callback).state_reason).toMatch(/chord header task a1a8bd03 ended FAILURE/);
    expect(node(last)).toMatchObject({ state: "NOT_RUN", placeholder: true, name: "app.add" });
    expect(node(last).state_reason).toMatch(/^not run: the step before it \(d35e2562\)/);
    expect(edge(callback, last)?.kind).toBe("chain");
    expect(snap.containers[0]).toMatchObject({ kind: "CHORD", state: "FAILURE", callback_id: callback });
    expect(snap.summary).toMatchObject({ state: "FAILURE", task_count: 3, not_run_count: 2 });
  });

  it("25c chained chords: each callback on its own header, the second chord after the first callback", async () => {
    const firstCallback = "a7b90195-7bfe-456f-a845-827381942f68";
    const secondHeader = ["0233767a-79c4-4271-a7c5-34b24b389b6e", "91f5f5bf-20ae-4ae0-a72b-cb6f581a609b"];
    const secondCallback = "2cb3cec3-3c4f-4990-9d39-66aed997e902";
    const { snap, edge } = await graphOf("25c_chained_chords", firstCallback);
    const chords = snap.containers.filter((c) => c.kind === "CHORD");
    expect(chords.map((c) => c.callback_id).sort()).toEqual([firstCallback, secondCallback].sort());
    for (const c of chords) expect(edge(c.id, c.callback_id!)?.kind).toBe("chord");
    expect(chords.find((c) => c.callback_id === secondCallback)?.members).toEqual(secondHeader);
    for (const h of secondHeader) expect(edge(firstCallback, h)?.kind).toBe("chain");
  });

  it("25d first of two chained chords fails: everything after it NOT_RUN, one chord_never_fired", async () => {
    const boom = "01db3507-0e04-46bd-9335-e9bdda37a797";
    const firstCallback = "9c0891f4-0797-4214-9589-d19fb5a48619";
    const secondHeader = ["78aeef2e-3d15-447f-983c-fefdaf61c58c", "323b7a65-052e-457b-b7ce-f0cffcc59f0a"];
    const secondCallback = "82491f0c-4ca2-4960-b8f4-1afca629c2b6";
    const { snap, node } = await graphOf("25d_chained_chords_header_fails", boom);
    for (const id of [firstCallback, ...secondHeader, secondCallback])
      expect(node(id).state, id).toBe("NOT_RUN");
    expect(node(secondCallback).state_reason).toMatch(/^not run: its chord header did not run/);
    expect(snap.summary.not_run_count).toBe(4);
    const res = await exports.default.fetch(`${base}/api/traces/${snap.trace_id}/anomalies`);
    const { anomalies } = (await res.json()) as {
      anomalies: { kind: string; task_id: string; resolved_at: number | null }[];
    };
    expect(anomalies.filter((a) => a.resolved_at === null).map((a) => [a.kind, a.task_id])).toEqual([
      ["chord_never_fired", firstCallback],
    ]);
  });

  it("25e chord whose header members are chains holding chords: every callback linked to its own header", async () => {
    const inner = [
      { group: "3d2fafac-3b3a-4dff-9715-8235ffccf1f2", callback: "956a6c64-8f90-4b5f-b531-ed1d6e6285df" },
      { group: "68aa2baf-f9f6-4af7-8549-6f7201690c7e", callback: "03b3f155-d61c-4729-a85d-45bff11669cc" },
    ];
    const outer = {
      group: "d648ed72-8924-4e58-987c-2c27a43f7559",
      callback: "9d4e9889-c8ac-4efa-b042-a8163d61715c",
    };
    const { snap, edge } = await graphOf("25e_chord_header_of_chains", outer.callback);
    for (const { group, callback } of [...inner, outer]) {
      expect(
        snap.containers.find((c) => c.id === group),
        group,
      ).toMatchObject({ kind: "CHORD", callback_id: callback, state: "SUCCESS" });
      expect(edge(group, callback)?.kind).toBe("chord");
    }
    expect(snap.containers.find((c) => c.id === outer.group)?.members).toEqual(
      expect.arrayContaining(inner.map((i) => i.callback)),
    );
  });

  it("26 chain step fails: the steps after it NOT_RUN, one chain_stopped at the first of them", async () => {
    const [stop, after] = ["0a1826c0-edb5-4292-baf0-6a1568ad9c6f", "6a9055a4-3f0e-4169-a968-9af3d41c2154"];
    const { snap, node } = await graphOf("26_chain_step_fails", stop);
    expect(node(stop).state_reason).toMatch(/^upstream step 71e9dd83 ended FAILURE/);
    expect(node(after).state_reason).toMatch(/^not run: the step before it \(0a1826c0\)/);
    const res = await exports.default.fetch(`${base}/api/traces/${snap.trace_id}/anomalies`);
    const { anomalies } = (await res.json()) as { anomalies: { kind: string; task_id: string }[] };
    expect(anomalies.map((a) => [a.kind, a.task_id])).toEqual([["chain_stopped", stop]]);
  });

  it("never-run tasks open like any task: the id a client holds, by id and by search", async () => {
    // 25b: the chain's AsyncResult.id is its last step; the chord's is its callback.
    for (const id of ["7261d47d-6380-45a7-be5d-a2e190e1a3a4", "d35e2562-5c3f-4d47-a4c1-29b907948598"]) {
      const detail = await detailOf(id);
      expect(detail.task.state).toBe("NOT_RUN");
      expect(detail.trace_id).toBe(
        traceOf(scenario("25b_chord_in_chain_header_fails"), "a1a8bd03-45c2-497a-8f66-01f73789be5a"),
      );
      const res = await exports.default.fetch(`${base}/api/tasks?q=${id.slice(0, 13)}`);
      const { tasks } = (await res.json()) as {
        tasks: { task_id: string; state: string; trace_id: string }[];
      };
      expect(tasks.map((t) => [t.task_id, t.state, t.trace_id])).toEqual([[id, "NOT_RUN", detail.trace_id]]);
    }
  });

  it("11a revoke before receive: REVOKED with no received", async () => {
    const detail = await detailOf("e901224d-6863-43b6-b6ce-4f87b6dc625d");
    expect(detail.task.state).toBe("REVOKED");
    expect(detail.events.map((e) => e.type)).not.toContain("received");
  });

  it("11c terminate while running: REVOKED wins over the interrupted postrun", async () => {
    const detail = await detailOf("ebb8a815-c30c-498a-9c0d-01879085c1bd");
    expect(detail.task.state).toBe("REVOKED");
    expect(detail.task.state_reason).toMatch(/terminated/);
  });

  it("11d expired: REVOKED, expired", async () => {
    const detail = await detailOf("da0706ed-c02b-4921-8f59-be5774cd9548");
    expect(detail.task.state_reason).toMatch(/expired/);
  });

  it("12 unregistered name: UNREGISTERED", async () => {
    const detail = await detailOf("09faf8c3-eece-4321-96cc-bf8b26ada5df");
    expect(detail.task).toMatchObject({ state: "UNREGISTERED", name: "does.not.exist" });
  });

  it("14 countdown: received with an ETA, then started", async () => {
    const detail = await detailOf("be6dbddf-e3b5-4476-a8e1-66d6c3dea5c1");
    expect(detail.task.state).toBe("SUCCESS");
    expect(detail.attempts[0]?.eta).toBeTruthy();
  });

  it("15b old-style errbacks: errback edges from the failed task", async () => {
    const failed = "d7caee55-99ff-4aea-94cd-100f1f9e2127";
    const { edge } = await graphOf("15b_link_error_old_style", failed);
    const s = scenario("15b_link_error_old_style");
    const errbacks = Object.keys(s.meta.backend_states_after).filter((id) => id !== failed);
    for (const e of errbacks) expect(edge(failed, e)?.kind).toBe("errback");
  });

  it("15c link callback: callback edge", async () => {
    const parent = "9b7f765e-9eef-491e-849a-6efd96c860ac";
    const s = scenario("15c_link_success");
    const child = Object.keys(s.meta.backend_states_after).find((id) => id !== parent)!;
    const { edge } = await graphOf("15c_link_success", parent);
    expect(edge(parent, child)?.kind).toBe("callback");
  });

  it("24 eager: standalone nodes", async () => {
    const { snap } = await graphOf("24_eager_apply", "f9c849ec-f5e2-4a26-997f-07b5129f9591");
    expect(snap.edges).toEqual([]);
  });
});
