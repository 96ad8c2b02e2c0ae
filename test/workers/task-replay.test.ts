/**
 * Time-travel replay of one task (`GET /api/tasks/:taskId?at=`): the task detail folded from the
 * task's events up to the moment, agreeing with the replayed graph (`GET /api/traces/:id?at=`),
 * on recorded Celery scenarios. Runs in both layouts (the suite runs again with TRACE_SHARDS=0).
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { TaskDetail } from "../../shared/api";
import { ReplaySnapshot, ReplayTaskDetail } from "../../shared/replay";
import { traceKeyOf } from "../../shared/wire";
import { settle } from "./objects";
import { scenario, taskEvents } from "./scenarios";

const base = "http://127.0.0.1";
const fetchApp = (path: string) => exports.default.fetch(`${base}${path}`);

const chord = scenario("07_chord");
const retry = scenario("03_retry_then_success");
const traceOf = (s: typeof chord) => traceKeyOf(taskEvents(s)[0]!);
/** A task's full id from its prefix, from the fixture. */
const idOf = (s: typeof chord, prefix: string) =>
  taskEvents(s).find((e) => e.task_id.startsWith(prefix))!.task_id;
/** The recorded time of a task's event of a type (and attempt), from the fixture itself. */
function tsOf(s: typeof chord, taskPrefix: string, type: string, retries = 0): number {
  const e = taskEvents(s).find(
    (x) => x.task_id.startsWith(taskPrefix) && x.type === type && (x.retries ?? 0) === retries,
  );
  if (!e) throw new Error(`${s.name}: no ${type} event of ${taskPrefix} (retries ${retries})`);
  return e.ts;
}
const times = (s: typeof chord) => taskEvents(s).map((e) => e.ts);

async function taskAt(taskId: string, moment: number): Promise<ReplayTaskDetail> {
  const res = await fetchApp(`/api/tasks/${taskId}?at=${moment}`);
  const body: unknown = await res.json();
  expect(res.status, JSON.stringify(body).slice(0, 300)).toBe(200);
  return ReplayTaskDetail.parse(body);
}
async function traceAt(traceId: string, moment: number): Promise<ReplaySnapshot> {
  const res = await fetchApp(`/api/traces/${traceId}?at=${moment}`);
  expect(res.status).toBe(200);
  return ReplaySnapshot.parse(await res.json());
}
async function live(taskId: string): Promise<TaskDetail> {
  const res = await fetchApp(`/api/tasks/${taskId}`);
  expect(res.status).toBe(200);
  return TaskDetail.parse(await res.json());
}

beforeAll(async () => {
  for (const s of [chord, retry]) {
    const res = await exports.default.fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: s.events }),
    });
    expect(res.status).toBe(202);
  }
  await settle();
});

describe("GET /api/tasks/:taskId?at= (replay)", () => {
  it("shows a retried task running its first attempt, with no result and no retry yet", async () => {
    const id = idOf(retry, "a44d6bda");
    const moment = tsOf(retry, "a44d6bda", "started", 0);
    const d = await taskAt(id, moment);
    expect(d.as_of).toBe(moment);
    expect(d.task).toMatchObject({ state: "STARTED", retries: 0, finished_at: null, runtime_ms: null });
    expect(d.attempts.map((a) => a.state)).toEqual(["STARTED"]);
    expect(d.result).toBeNull();
    expect(d.exception).toBeNull();
    expect(d.events.every((e) => e.ts <= moment)).toBe(true);
    expect(d.events.map((e) => e.type)).toEqual(
      taskEvents(retry)
        .filter((e) => e.task_id === id && e.ts <= moment)
        .map((e) => e.type),
    );
    expect(d.args).toEqual((await live(id)).args);
  });

  it("shows the retries so far, then the finished task exactly as the live detail", async () => {
    const id = idOf(retry, "a44d6bda");
    const afterRetry = await taskAt(id, tsOf(retry, "a44d6bda", "postrun", 0));
    expect(afterRetry.task.retries).toBe(1);
    expect(afterRetry.task.state).not.toBe("SUCCESS");
    expect(afterRetry.attempts[0]!.state).toBe("RETRY");
    expect(afterRetry.attempts.length).toBeLessThan((await live(id)).attempts.length);
    expect(afterRetry.result).toBeNull();

    const secondRun = await taskAt(id, tsOf(retry, "a44d6bda", "started", 1));
    expect(secondRun.task.state).toBe("STARTED");
    expect(secondRun.task.retries).toBe(1);
    expect(secondRun.attempts.map((a) => a.state)).toEqual(["RETRY", "STARTED"]);

    // After the last event the replayed detail is the live one (anomaly marks aside).
    const { as_of: _asOf, ...end } = await taskAt(id, Math.max(...times(retry)) + 60);
    const now = await live(id);
    expect(end.task.state).toBe("SUCCESS");
    expect(end.result).not.toBeNull();
    expect(end).toEqual({ ...now, task: { ...now.task, anomaly: null } });
  });

  it("agrees with the replayed chord graph at every moment: each sent task's state, placeholders 404", async () => {
    const trace = traceOf(chord);
    for (const moment of [...new Set(times(chord))].sort((a, b) => a - b)) {
      const graph = await traceAt(trace, moment);
      for (const node of graph.nodes) {
        const res = await fetchApp(`/api/tasks/${node.id}?at=${moment}`);
        const body = (await res.json()) as { error?: { code: string; message: string } };
        if (node.placeholder) {
          expect(res.status).toBe(404);
          expect(body.error?.code).toBe("not_yet_published");
          expect(body.error?.message).toContain(new Date(moment * 1000).toISOString());
        } else {
          expect(res.status, `${node.id} at ${moment}`).toBe(200);
          expect(ReplayTaskDetail.parse(body).task).toEqual(node);
        }
      }
    }
  });

  it("shows a chord's header mid-run and its callback's chord link as it was", async () => {
    const mid = tsOf(chord, "67278e89", "started");
    const member = await taskAt(idOf(chord, "07b6e364"), mid);
    expect(member.task.state).toBe("PENDING");
    // Sent, not yet received: one attempt, published and waiting.
    expect(member.attempts.map((a) => [a.state, a.received_at])).toEqual([["PENDING", null]]);
    expect(member.result).toBeNull();

    const callback = idOf(chord, "a8a105c9");
    const res = await fetchApp(`/api/tasks/${callback}?at=${mid}`);
    expect(res.status).toBe(404);
    const err = ((await res.json()) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe("not_yet_published");
    expect(err.message).toMatch(/was not published yet at .* \(replay\): its first event is at /);

    const running = await taskAt(callback, tsOf(chord, "a8a105c9", "started"));
    expect(running.task.state).toBe("STARTED");
    expect(running.result).toBeNull();
    expect(running.parent).toMatchObject({
      kind: "chord",
      state: "STARTED",
      container: { kind: "CHORD", size: 3 },
    });
    const done = await taskAt(callback, tsOf(chord, "a8a105c9", "succeeded"));
    expect(done.task.state).toBe("SUCCESS");
    expect(done.parent!.state).toBe("SUCCESS");
    expect(done.result).toEqual((await live(callback)).result);
  });

  it("refuses a bad moment with the trace route's 400 and an unknown task with 404", async () => {
    const id = idOf(retry, "a44d6bda");
    for (const [raw, message] of [
      ["abc", /finite number/],
      ["1795334409031", /out of range.*milliseconds/],
    ] as const) {
      const res = await fetchApp(`/api/tasks/${id}?at=${encodeURIComponent(raw)}`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_at");
      expect(body.error.message).toMatch(message);
    }
    const unknown = await fetchApp(`/api/tasks/00000000-0000-4000-8000-00000000bbbb?at=1795334409`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("not_found");
    // Before the task's first event: not published yet, not a 500 or an empty task.
    const early = await fetchApp(`/api/tasks/${id}?at=${Math.min(...times(retry)) - 10}`);
    expect(early.status).toBe(404);
    expect(((await early.json()) as { error: { code: string } }).error.code).toBe("not_yet_published");
  });
});
