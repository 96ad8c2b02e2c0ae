/**
 * Time-travel replay (issue 17 item 1): `GET /api/traces/:id?at=` rebuilds the trace from the
 * events whose own `ts` is at or before the moment, on recorded Celery scenarios. Runs in both
 * layouts (the suite runs again with TRACE_SHARDS=0).
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { TraceSnapshot, type TaskState } from "../../shared/api";
import { REPLAY_DENSITY_BUCKETS, ReplaySnapshot } from "../../shared/replay";
import { traceKeyOf } from "../../shared/wire";
import { settle } from "./objects";
import { scenario, taskEvents } from "./scenarios";

const base = "http://127.0.0.1";
const fetchApp = (path: string) => exports.default.fetch(`${base}${path}`);

const chord = scenario("07_chord");
const retry = scenario("03_retry_then_success");
const chainFails = scenario("26_chain_step_fails");
const coldShutdown = scenario("13c_cold_shutdown_early_ack_lost");
const traceOf = (s: typeof chord) => traceKeyOf(taskEvents(s)[0]!);
/** The recorded time of a task's event of a type (and attempt), from the fixture itself. */
function tsOf(s: typeof chord, taskPrefix: string, type: string, retries = 0): number {
  const e = taskEvents(s).find(
    (x) => x.task_id.startsWith(taskPrefix) && x.type === type && (x.retries ?? 0) === retries,
  );
  if (!e) throw new Error(`${s.name}: no ${type} event of ${taskPrefix} (retries ${retries})`);
  return e.ts;
}
const times = (s: typeof chord) => taskEvents(s).map((e) => e.ts);

async function at(traceId: string, moment: number | string): Promise<ReplaySnapshot> {
  const res = await fetchApp(`/api/traces/${traceId}?at=${encodeURIComponent(moment)}`);
  const body: unknown = await res.json();
  expect(res.status, JSON.stringify(body).slice(0, 300)).toBe(200);
  return ReplaySnapshot.parse(body);
}

const states = (s: TraceSnapshot) => Object.fromEntries(s.nodes.map((n) => [n.id.slice(0, 8), n.state]));

async function post(events: unknown[]): Promise<void> {
  const res = await exports.default.fetch(`${base}/v1/events`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(202);
  await settle();
}

beforeAll(async () => {
  for (const s of [chord, retry, chainFails]) await post(s.events);
});

describe("GET /api/traces/:id?at= (replay)", () => {
  it("shows a chord mid-run: two header tasks started, one queued, the callback announced and pending", async () => {
    const trace = traceOf(chord);
    // Just after the second header task started, before the third was received.
    const moment = tsOf(chord, "67278e89", "started");
    const snap = await at(trace, moment);
    expect(states(snap)).toEqual({
      "980cf0c5": "STARTED",
      "67278e89": "STARTED",
      "07b6e364": "PENDING",
      a8a105c9: "PENDING",
    });
    const callback = snap.nodes.find((n) => n.id.startsWith("a8a105c9"))!;
    expect(callback.placeholder).toBe(true);
    expect(snap.containers).toHaveLength(1);
    expect(snap.containers[0]).toMatchObject({ kind: "CHORD", state: "STARTED", size: 3 });
    expect(snap.edges.some((e) => e.kind === "chord" && e.target === callback.id)).toBe(true);
    expect(snap.summary).toMatchObject({ state: "STARTED", task_count: 3, finished_at: null });
    expect(snap.replay).toMatchObject({
      at: moment,
      current_at: moment,
      first_event_at: Math.min(...times(chord)),
      last_event_at: Math.max(...times(chord)),
      events_total: taskEvents(chord).length,
      events_applied: times(chord).filter((t) => t <= moment).length,
      next_at: Math.min(...times(chord).filter((t) => t > moment)),
      previous_at: Math.max(...times(chord).filter((t) => t < moment)),
    });
    expect(snap.replay.density).toHaveLength(REPLAY_DENSITY_BUCKETS);
    expect(snap.replay.density.reduce((a, b) => a + b, 0)).toBe(taskEvents(chord).length);
  });

  it("shows the chord's header done and the callback running later, and everything done at the end", async () => {
    const trace = traceOf(chord);
    const running = await at(trace, tsOf(chord, "a8a105c9", "started"));
    expect(states(running)).toEqual({
      "980cf0c5": "SUCCESS",
      "67278e89": "SUCCESS",
      "07b6e364": "SUCCESS",
      a8a105c9: "STARTED",
    });
    expect(running.nodes.find((n) => n.id.startsWith("a8a105c9"))!.placeholder).toBe(false);

    const end = await at(trace, Math.max(...times(chord)) + 60);
    expect(Object.values(states(end))).toEqual(["SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"]);
    expect(end.replay.next_at).toBeNull();
    expect(end.replay.events_applied).toBe(end.replay.events_total);
    // After the last event the replay is the live graph (anomaly marks aside, which replay leaves out).
    const live = TraceSnapshot.parse(await (await fetchApp(`/api/traces/${trace}`)).json());
    const graph = (s: TraceSnapshot) => ({
      nodes: s.nodes.map((n) => ({ ...n, anomaly: null })),
      edges: s.edges,
      containers: s.containers,
    });
    expect(graph(end)).toEqual(graph(live));
    expect(end.summary.state).toBe(live.summary.state);
  });

  it("shows a retried task waiting after its RETRY, then SUCCESS", async () => {
    const trace = traceOf(retry);
    const firstRun = await at(trace, tsOf(retry, "a44d6bda", "started", 0));
    expect(firstRun.nodes.map((n) => n.state)).toEqual(["STARTED"]);

    // After attempt 0 retried: its run ended RETRY, attempt 1 is received and waits for its countdown.
    const afterRetry = await at(trace, tsOf(retry, "a44d6bda", "postrun", 0));
    const waiting = afterRetry.nodes[0]!;
    expect(waiting.runs?.map((r) => r.state)).toEqual(["RETRY", "SCHEDULED"]);
    expect(waiting.state).not.toBe("SUCCESS");
    expect(waiting.retries).toBe(1);

    const secondRun = await at(trace, tsOf(retry, "a44d6bda", "started", 1));
    expect(secondRun.nodes[0]!.state).toBe("STARTED");
    expect(secondRun.nodes[0]!.runs?.map((r) => r.state)).toEqual(["RETRY", "STARTED"]);

    const done = await at(trace, tsOf(retry, "a44d6bda", "succeeded", 2));
    expect(done.nodes[0]!.state).toBe("SUCCESS");
    expect(done.nodes[0]!.runs?.map((r) => r.state)).toEqual(["RETRY", "RETRY", "SUCCESS"]);
    expect(done.summary.state).toBe("SUCCESS");
  });

  it("marks a chain's later steps NOT_RUN only once the step before them has failed", async () => {
    const trace = traceOf(chainFails);
    const before = await at(trace, tsOf(chainFails, "71e9dd83", "started"));
    expect(states(before)).toEqual({
      "8553492b": "SUCCESS",
      "71e9dd83": "STARTED",
      "0a1826c0": "PENDING",
      "6a9055a4": "PENDING",
    });
    const after = await at(trace, tsOf(chainFails, "71e9dd83", "failed"));
    expect(states(after)).toMatchObject({
      "71e9dd83": "FAILURE",
      "0a1826c0": "NOT_RUN",
      "6a9055a4": "NOT_RUN",
    });
    expect(after.summary.state).toBe("FAILURE");
  });

  it("ends a run at its worker's cold shutdown only from the shutdown's moment on", async () => {
    const trace = traceOf(coldShutdown);
    const shutdown = coldShutdown.events.find((e) => e.kind === "worker" && e.type === "shutting_down")!.ts;
    const postrun = tsOf(coldShutdown, "0e9127bf", "postrun");
    expect(shutdown).toBeLessThan(postrun);
    // As it happened: the run is going when the worker shuts down cold (the outage is recorded
    // against running tasks only), and its postrun comes later.
    // The recording began with the worker already up: it says so first (the Fleet ends the runs of
    // workers it knows).
    const first = Math.min(...times(coldShutdown));
    await post([
      {
        v: 1,
        id: "replay-13c-online",
        kind: "worker",
        type: "online",
        ts: first - 5,
        seq: 1,
        host: "lab2@vm",
        pid: 13954,
        pool: "prefork",
        concurrency: 2,
      },
    ]);
    await post(coldShutdown.events.filter((e) => e.ts < shutdown));
    await post(coldShutdown.events.filter((e) => e.kind === "worker" && e.ts >= shutdown));
    await post(coldShutdown.events.filter((e) => e.kind === "task" && e.ts >= shutdown));
    const running = await at(trace, (tsOf(coldShutdown, "0e9127bf", "started") + shutdown) / 2);
    expect(running.nodes.map((n) => n.state)).toEqual(["STARTED"]);
    // After the shutdown and before the run's own postrun: the outage alone ends it.
    const cut = await at(trace, (shutdown + postrun) / 2);
    expect(cut.nodes.map((n) => n.state)).toEqual(["INTERRUPTED"]);
    expect(cut.nodes[0]!.state_reason).toMatch(/shut down cold/);
  });

  it("steps event by event: next_at and previous_at walk every distinct event time", async () => {
    const trace = traceOf(retry);
    const distinct = [...new Set(times(retry))].sort((a, b) => a - b);
    let moment = distinct[0]!;
    const visited = [moment];
    for (;;) {
      const snap = await at(trace, moment);
      expect(snap.replay.current_at).toBe(moment);
      if (snap.replay.next_at === null) break;
      moment = snap.replay.next_at;
      visited.push(moment);
    }
    expect(visited).toEqual(distinct);
    const back: number[] = [moment];
    for (;;) {
      const snap = await at(trace, moment);
      if (snap.replay.previous_at === null) break;
      moment = snap.replay.previous_at;
      back.push(moment);
    }
    expect(back).toEqual([...distinct].reverse());
  });

  it("answers a moment before the first event with an empty, valid graph", async () => {
    const trace = traceOf(chord);
    const first = Math.min(...times(chord));
    const snap = await at(trace, first - 10);
    expect(snap.nodes).toEqual([]);
    expect(snap.edges).toEqual([]);
    expect(snap.containers).toEqual([]);
    expect(snap.summary).toMatchObject({ task_count: 0, started_at: null, finished_at: null });
    expect(snap.replay).toMatchObject({
      events_applied: 0,
      current_at: null,
      previous_at: null,
      next_at: first,
    });
  });

  it("accepts every way of writing a number of seconds", async () => {
    const trace = traceOf(chord);
    // Between the callback's start and its success; 17 significant digits write a double exactly.
    const moment = (tsOf(chord, "a8a105c9", "started") + tsOf(chord, "a8a105c9", "succeeded")) / 2;
    const plain = await at(trace, moment);
    expect(plain.nodes.find((n) => n.id.startsWith("a8a105c9"))!.state).toBe("STARTED");
    const exp = await at(trace, moment.toExponential(16));
    expect(states(exp)).toEqual(states(plain));
    expect((await at(trace, " 0 ")).nodes).toEqual([]);
  });

  it.each([
    ["", /at is empty/],
    ["abc", /finite number/],
    ["NaN", /finite number/],
    ["Infinity", /finite number/],
    ["1e400", /finite number/],
    ["0x10", /finite number/],
    ["1795334409,03", /finite number/],
    ["-5", /out of range/],
    ["1795334409031", /out of range.*milliseconds/],
  ])("refuses at=%j with a clear 400", async (raw, message) => {
    const res = await fetchApp(`/api/traces/${traceOf(chord)}?at=${encodeURIComponent(raw)}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_at");
    expect(body.error.message).toMatch(message);
  });

  it("answers 404 for an unknown trace, whatever the moment", async () => {
    const res = await fetchApp(`/api/traces/00000000-0000-4000-8000-00000000aaaa?at=1795334409`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("leaves the live snapshot as it was (no replay field without at)", async () => {
    const body = (await (await fetchApp(`/api/traces/${traceOf(chord)}`)).json()) as Record<string, unknown>;
    expect(body).not.toHaveProperty("replay");
    const expected: TaskState[] = ["SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"];
    expect(TraceSnapshot.parse(body).nodes.map((n) => n.state)).toEqual(expected);
  });
});
