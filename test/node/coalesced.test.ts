/**
 * A producer may send an attempt's end event with `received_ts` / `started_ts` instead of its
 * `received` and `started` events (the Python producer does when the task ends before they were
 * sent). Property: over every recorded scenario, coalescing each attempt that way and expanding it
 * at ingest (`expandCoalesced`) gives the same events and the same graph as the events themselves.
 */
import { describe, expect, it } from "vitest";
import { expandCoalesced, MESSAGE_FIELDS, type TaskEvent } from "../../shared/wire";
import { graphOf, scenarios, taskEventsOf } from "./wire-fixtures";

/** What the Python producer does: an attempt's succeeded event, in the process that started it, also
 * carries its started (and, in the same process, its received) event. The others stay as they are. */
function coalesce(events: TaskEvent[]): { events: TaskEvent[]; coalesced: number } {
  const attemptOf = (e: TaskEvent) => `${e.task_id}/${e.retries ?? 0}/${e.host}/${e.pid}`;
  const started = new Map(events.filter((e) => e.type === "started").map((e) => [attemptOf(e), e]));
  const received = new Map(events.filter((e) => e.type === "received").map((e) => [attemptOf(e), e]));
  const dropped = new Set<TaskEvent>();
  const out: TaskEvent[] = [];
  let coalesced = 0;
  for (const e of events) {
    const s = e.type === "succeeded" ? started.get(attemptOf(e)) : undefined;
    // An eager run has no received, and its started carries the arguments: the producer never coalesces it.
    if (!s || s.eager || s.redelivered !== e.redelivered) continue;
    const r = received.get(attemptOf(e));
    const message = r ? Object.fromEntries(MESSAGE_FIELDS.filter((k) => k in r).map((k) => [k, r[k]])) : {};
    out.push({ ...e, ...message, started_ts: s.ts, ...(r ? { received_ts: r.ts } : {}) });
    dropped.add(e).add(s);
    if (r) dropped.add(r);
    coalesced++;
  }
  return { events: [...events.filter((e) => !dropped.has(e)), ...out], coalesced };
}

/** The event without its id and seq (the expansion derives ids), keys sorted. */
const canonical = (e: TaskEvent) =>
  JSON.stringify(
    Object.fromEntries(
      Object.entries(e)
        .filter(([k]) => k !== "id" && k !== "seq")
        .sort(([a], [b]) => (a < b ? -1 : 1)),
    ),
  );

describe("coalesced end events", () => {
  let total = 0;
  for (const { file, events: recorded } of scenarios) {
    const events = taskEventsOf(recorded);
    const { events: sent, coalesced } = coalesce(events);
    total += coalesced;
    if (!coalesced) continue;
    it(`${file.replace(".json", "")}: ${coalesced} coalesced attempts expand to the same events and graph`, () => {
      const expanded = sent.flatMap(expandCoalesced);
      expect(expanded.map(canonical).sort()).toEqual(events.map(canonical).sort());
      expect(graphOf(expanded)).toEqual(graphOf(events));
      expect(new Set(expanded.map((e) => e.id)).size).toBe(expanded.length);
    });
  }
  it("covers attempts of the recorded scenarios", () => expect(total).toBeGreaterThanOrEqual(10));

  it("derives the ids and leaves every other event alone", () => {
    const end = {
      v: 1,
      id: "p-9",
      seq: 9,
      kind: "task",
      type: "succeeded",
      ts: 3,
      host: "w@h",
      pid: 7,
      task_id: "t",
      name: "n",
      trace_id: "t",
      retries: 0,
      queue: "celery",
      root_id: "r",
      state: "SUCCESS",
      runtime_ms: 1.5,
      result: 4,
      received_ts: 1,
      started_ts: 2,
    } as TaskEvent;
    expect(expandCoalesced(end)).toEqual([
      {
        v: 1,
        id: "p-9:received",
        seq: 9,
        kind: "task",
        type: "received",
        ts: 1,
        host: "w@h",
        pid: 7,
        task_id: "t",
        name: "n",
        trace_id: "t",
        retries: 0,
        queue: "celery",
        root_id: "r",
      },
      {
        v: 1,
        id: "p-9:started",
        seq: 9,
        kind: "task",
        type: "started",
        ts: 2,
        host: "w@h",
        pid: 7,
        task_id: "t",
        name: "n",
        trace_id: "t",
        retries: 0,
        queue: "celery",
      },
      {
        v: 1,
        id: "p-9",
        seq: 9,
        kind: "task",
        type: "succeeded",
        ts: 3,
        host: "w@h",
        pid: 7,
        task_id: "t",
        name: "n",
        trace_id: "t",
        retries: 0,
        queue: "celery",
        state: "SUCCESS",
        runtime_ms: 1.5,
        result: 4,
      },
    ]);
    const { received_ts: _r, ...startedOnly } = end;
    expect(expandCoalesced(startedOnly).map((e) => e.type)).toEqual(["started", "succeeded"]);
    const plain = { ...end, received_ts: undefined, started_ts: undefined };
    delete plain.received_ts;
    delete plain.started_ts;
    expect(expandCoalesced(plain)).toEqual([plain]);
  });
});
