/**
 * Run diff (`GET /api/traces/:id/diff`, issue 17 item 2) over the recorded chord (07_chord)
 * replayed as several runs of one root task: each copy gets new ids, its times shifted, and some
 * edits (a slower step, a later start, a failing header task). Another recording whose task names
 * contain the root name (but whose root differs) checks that runs are matched on the exact root.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ApiError, TraceDiff, type StepDiff } from "../../shared/api";
import { traceKeyOf, type TaskEvent } from "../../shared/wire";
import { settle } from "./objects";
import { scenario, taskEvents } from "./scenarios";

const base = "http://127.0.0.1";
const fetchApp = (path: string) => exports.default.fetch(`${base}${path}`);

async function ingest(events: unknown[]): Promise<void> {
  const res = await exports.default.fetch(`${base}/v1/events`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(202);
  expect(((await res.json()) as { rejected: unknown[] }).rejected).toEqual([]);
}

const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Another run of a recording: new ids, task names renamed, times shifted, then `edit` per event. */
function replay(
  file: string,
  suffix: string,
  shiftS: number,
  names: Record<string, string>,
  edit: (e: TaskEvent, index: number) => TaskEvent | null = (e) => e,
): TaskEvent[] {
  const events = taskEvents(scenario(file));
  const copy = JSON.parse(JSON.stringify(events).replace(uuid, (id) => `${id}-${suffix}`)) as TaskEvent[];
  return copy
    .map((e) => {
      const renamed = JSON.parse(
        JSON.stringify(e).replace(/"(app\.[a-z]+)"/g, (m, n: string) => (names[n] ? `"${names[n]}"` : m)),
      ) as TaskEvent;
      return { ...renamed, ts: renamed.ts + shiftS };
    })
    .map(edit)
    .filter((e): e is TaskEvent => e !== null);
}

const CHORD_NAMES = { "app.add": "diff.add", "app.tsum": "diff.tsum" };
const chord = taskEvents(scenario("07_chord"));
// The recording's header tasks (group index 0, 1, 2) and callback.
const member = (i: number) => chord.find((e) => e.type === "published" && e.group_index === i)!.task_id;
const callback = chord.find((e) => e.name === "app.tsum")!.task_id;
const traceOf = (suffix: string) => `${traceKeyOf(chord[0]!)}-${suffix}`;
const is = (e: TaskEvent, task: string, type: string) => e.task_id.startsWith(task) && e.type === type;

const A = traceOf("runa");
const B = traceOf("runb");
const C = traceOf("runc");
let imposter = "";
let lonely = "";

beforeAll(async () => {
  const now = Math.floor(Date.now() / 1000);
  const shift = (ago: number) => now - ago - Math.floor(chord[0]!.ts);
  // A: as recorded, three hours ago.
  await ingest(replay("07_chord", "runa", shift(3 * 3600), CHORD_NAMES));
  // B: two hours ago; header task 1 ran 2 s longer.
  await ingest(
    replay("07_chord", "runb", shift(2 * 3600), CHORD_NAMES, (e) =>
      is(e, member(1), "succeeded") ? { ...e, ts: e.ts + 2, runtime_ms: (e.runtime_ms ?? 0) + 2000 } : e,
    ),
  );
  // Between B and C: a chain whose names contain the root name, but whose root is another task.
  const other = replay("05_chain", "imposter", shift(90 * 60), {
    "app.add": "diff.add.more",
    "app.mul": "diff.mul",
  });
  imposter = traceKeyOf(other[0]!);
  await ingest(other);
  // C: an hour ago; header task 0 started 0.5 s later, task 2 failed, so the callback never ran.
  await ingest(
    replay("07_chord", "runc", shift(3600), CHORD_NAMES, (e) => {
      if (is(e, member(0), "started")) return { ...e, ts: e.ts + 0.5 };
      if (is(e, member(0), "succeeded")) return { ...e, ts: e.ts + 0.5 };
      if (is(e, member(2), "succeeded")) {
        const { runtime_ms: _r, result: _res, ...rest } = e;
        return { ...rest, type: "failed", exception: { type: "ValueError", message: "boom" } };
      }
      return e.task_id.startsWith(callback) ? null : e;
    }),
  );
  const single = replay("01_single_success", "lonely", shift(600), { "app.add": "diff.lonely" });
  lonely = traceKeyOf(single[0]!);
  await ingest(single);
  await settle();
});

async function diff(traceId: string, against: string): Promise<TraceDiff> {
  const res = await fetchApp(`/api/traces/${traceId}/diff?against=${encodeURIComponent(against)}`);
  const body: unknown = await res.json();
  expect(res.status, JSON.stringify(body).slice(0, 400)).toBe(200);
  return TraceDiff.parse(body);
}

async function error(path: string, status: number): Promise<ApiError["error"]> {
  const res = await fetchApp(path);
  expect(res.status).toBe(status);
  return ApiError.parse(await res.json()).error;
}

const step = (d: TraceDiff, key: string): StepDiff => {
  const s = d.steps.find((x) => x.key === key);
  expect(s, `${key} in ${d.steps.map((x) => x.key).join(", ")}`).toBeDefined();
  return s!;
};

describe("GET /api/traces/:id/diff", () => {
  it("compares with the previous run of the same root task (not one whose names only contain it)", async () => {
    const d = await diff(C, "previous");
    expect(d.root_name).toBe("diff.add");
    expect(d.against).toMatchObject({ mode: "previous", trace_ids: [B] });
    // Header task 1 was 2 s slower in B: it is 2 s faster now.
    const m1 = step(d, "CHORD[1]:diff.add");
    expect(m1.runtime.delta_ms).toBeCloseTo(-2000, 3);
    expect(m1.runtime.ratio).toBeLessThan(0.01);
    expect(m1.task_id).toBe(`${member(1)}-runc`);
    expect(m1.other_task_id).toBe(`${member(1)}-runb`);
    // Header task 0 waited 0.5 s longer for a worker.
    expect(step(d, "CHORD[0]:diff.add").queue_wait.delta_ms).toBeCloseTo(500, 0);
    expect(step(d, "CHORD[2]:diff.add")).toMatchObject({
      newly_failed: true,
      state_then: "SUCCESS",
      state_now: "FAILURE",
    });
    expect(step(d, "CHORD > callback:diff.tsum")).toMatchObject({
      newly_not_run: true,
      state_now: "NOT_RUN",
      added: false,
      missing: false,
    });
    expect(d.summary).toMatchObject({ steps: 4, newly_failed: 1, newly_not_run: 1, added: 0, missing: 0 });
    // Flagged steps first, then the biggest change of time.
    expect(d.summary.biggest.slice(0, 3).map((s) => s.key)).toEqual([
      "CHORD[2]:diff.add",
      "CHORD > callback:diff.tsum",
      "CHORD[1]:diff.add",
    ]);
  });

  it("compares with a given trace", async () => {
    const d = await diff(B, A);
    expect(d.against).toMatchObject({ mode: "trace", trace_ids: [A] });
    expect(step(d, "CHORD[1]:diff.add").runtime.delta_ms).toBeCloseTo(2000, 3);
    expect(d.summary).toMatchObject({ newly_failed: 0, newly_not_run: 0, changed: 1 });
    expect(d.summary.biggest.map((s) => s.key)).toEqual(["CHORD[1]:diff.add"]);
  });

  it("compares with the per-step median of the other finished runs", async () => {
    const d = await diff(C, "median");
    expect(d.against.mode).toBe("median");
    expect(new Set(d.against.trace_ids)).toEqual(new Set([A, B]));
    const ab = await diff(B, A);
    const m1 = step(ab, "CHORD[1]:diff.add");
    // Two runs: the median is their mean.
    expect(step(d, "CHORD[1]:diff.add").runtime.then).toBeCloseTo(
      (m1.runtime.then! + m1.runtime.now!) / 2,
      3,
    );
    expect(step(d, "CHORD[1]:diff.add").runs).toBe(2);
    // A's median includes C, whose failure is outvoted by B.
    const fromA = await diff(A, "median");
    expect(new Set(fromA.against.trace_ids)).toEqual(new Set([B, C]));
  });

  it("answers 404 for an unknown trace, and when there is no other run to compare with", async () => {
    expect((await error(`/api/traces/nope-${A}/diff`, 404)).code).toBe("not_found");
    expect((await error(`/api/traces/${C}/diff?against=nope-${A}`, 404)).message).toContain("compare with");
    const first = await error(`/api/traces/${A}/diff?against=previous`, 404);
    expect(first.code).toBe("no_other_run");
    expect(first.message).toContain("diff.add");
    expect((await error(`/api/traces/${lonely}/diff?against=median`, 404)).code).toBe("no_other_run");
  });

  it("answers 400 for a bad against, and 422 for a run of another root task", async () => {
    expect(
      (await error(`/api/traces/${C}/diff?against=${encodeURIComponent("no such/id!")}`, 400)).code,
    ).toBe("invalid_against");
    expect((await error(`/api/traces/${C}/diff?against=${C}`, 400)).message).toContain("itself");
    const other = await error(`/api/traces/${C}/diff?against=${imposter}`, 422);
    expect(other.code).toBe("different_root");
    expect(other.message).toContain("diff.add.more");
  });
});
