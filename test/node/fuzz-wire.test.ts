/**
 * Issue 15, pure half of the fuzz suite: the wire checks on their own (no Worker), many more
 * cases than the Worker fuzz can afford. `validateEvents` (the schema, its fast path and the
 * screening) must never throw, must refuse exactly the events that break a rule, say why, and
 * hand on events that JSON and SQLite can store (nesting within the limit, valid Unicode).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anomalyConfigFrom, watchFor } from "../../shared/anomalies";
import { foldTask } from "../../shared/task-fold";
import {
  exactMatcher,
  Event,
  MAX_PAYLOAD_DEPTH,
  MAX_TS,
  MAX_TS_AHEAD_S,
  MIN_TS,
  mayHoldSurrogates,
  nestsDeeperThan,
  parseEvent,
  screenEvent,
  type TaskEvent,
} from "../../shared/wire";
import { validateEvents } from "../../worker/ingest";

const NOW = 1_796_000_000; // 2026-12
const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function nested(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v];
  return v;
}

function hasLone(value: unknown): boolean {
  if (typeof value === "string") return LONE.test(value);
  if (Array.isArray(value)) return value.some(hasLone);
  if (value && typeof value === "object")
    return Object.entries(value).some(([k, v]) => LONE.test(k) || hasLone(v));
  return false;
}

const lone = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const str = fc.oneof(
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.tuple(fc.string({ maxLength: 3 }), lone).map(([a, b]) => a + b),
);
const number = fc.oneof(
  fc.double(),
  fc.constantFrom(
    -0,
    0,
    MIN_TS - 1,
    MIN_TS,
    MAX_TS,
    MAX_TS + 1,
    NOW,
    NOW * 1000,
    NOW * 1e6,
    8.64e12,
    1e308,
    -1,
    0.5,
    NOW + MAX_TS_AHEAD_S + 1,
  ),
);
const anyValue = fc.oneof(str, number, fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 }));
const payload = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.integer({ min: 0, max: 200 }).map(nested), str);

/** An event that is mostly right, with a few fields set to anything. */
const event = fc
  .record({
    kind: fc.constantFrom("task", "worker"),
    type: fc.constantFrom("published", "started", "succeeded", "heartbeat", "online", "bogus"),
    ts: number,
    id: fc.oneof(fc.constant("e1"), str),
    task_id: fc.oneof(fc.constant("t1"), str),
    trace_id: fc.option(str),
    host: fc.oneof(fc.constant("w@h"), str),
    args: payload,
    result: payload,
    freq: fc.option(number, { nil: undefined }),
    received_ts: fc.option(number, { nil: undefined }),
    chaos: fc.dictionary(
      fc.constantFrom("seq", "v", "name", "runtime_ms", "retries", "queue", "pid", "group_index"),
      anyValue,
      { maxKeys: 2 },
    ),
  })
  .map(({ chaos, ...e }) => ({ v: 1, seq: 1, name: "app.x", ...e, ...chaos }));

describe("the wire checks on generated events", () => {
  it("never throw; refuse exactly what breaks a rule; pass on only storable events", () => {
    let refused = 0;
    let kept = 0;
    fc.assert(
      fc.property(fc.array(fc.oneof(event, anyValue), { minLength: 1, maxLength: 20 }), (raw) => {
        const text = JSON.stringify({ events: raw });
        const events = (JSON.parse(text) as { events: unknown[] }).events; // as the Worker sees them
        const result = validateEvents(events, NOW, mayHoldSurrogates(text));
        const rejectedIdx = result.rejected.map((r) => r.index);
        for (const r of result.rejected) expect(r.error.length).toBeGreaterThan(5);
        events.forEach((e, index) => {
          const parsed = parseEvent(e);
          const screened = parsed.success ? screenEvent(parsed.data, NOW) : null;
          const ok = parsed.success && screened!.ok;
          expect(rejectedIdx.includes(index), JSON.stringify(e)?.slice(0, 300)).toBe(!ok);
        });
        const stored = [...result.tasks.map((t) => t.event), ...result.workers.map((w) => w.event)];
        for (const e of stored) {
          expect(e.ts).toBeGreaterThanOrEqual(MIN_TS);
          expect(e.ts).toBeLessThanOrEqual(NOW + MAX_TS_AHEAD_S);
          expect(hasLone(e)).toBe(false);
          if (e.kind === "task")
            for (const f of ["args", "kwargs", "result"] as const)
              expect(nestsDeeperThan(e[f], MAX_PAYLOAD_DEPTH)).toBe(false);
          if (e.kind === "worker" && e.freq != null) expect(e.freq).toBeGreaterThan(0);
        }
        refused += result.rejected.length;
        kept += stored.length;
      }),
      { numRuns: 5_000 },
    );
    expect(refused).toBeGreaterThan(0);
    expect(kept).toBeGreaterThan(0);
  });

  it("the fast path agrees with zod on every generated event", () => {
    const fast = exactMatcher(Event);
    fc.assert(
      fc.property(event, (e) => {
        if (fast(e)) expect(Event.safeParse(e)).toMatchObject({ success: true, data: e });
      }),
      { numRuns: 5_000 },
    );
  });

  it("explains a unit mistake in a timestamp", () => {
    const e = { v: 1, id: "e", kind: "worker", type: "heartbeat", ts: NOW * 1000, seq: 1, host: "w@h" };
    const r = validateEvents([e], NOW);
    expect(r.rejected[0]!.error).toMatch(/^ts: .*milliseconds instead of seconds\?/);
    expect(validateEvents([{ ...e, ts: NOW * 1e6 }], NOW).rejected[0]!.error).toMatch(
      /microseconds or nanoseconds/,
    );
    expect(validateEvents([{ ...e, ts: NOW + 2 * 86_400 }], NOW).rejected[0]!.error).toMatch(
      /2 days ahead of the server's clock/,
    );
  });

  it("a task named like an Object property gets a numeric deadline (not a string)", () => {
    const config = anomalyConfigFrom({ STUCK_STARTED_BY_NAME: '{"app.slow": 5}' });
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const started: TaskEvent = {
        v: 1,
        id: `s-${name}`,
        kind: "task",
        type: "started",
        ts: NOW,
        seq: 1,
        host: "w@h",
        task_id: "t",
        name,
      };
      const watch = watchFor(foldTask("t", [started]), config, NOW);
      expect(typeof watch?.due_at, name).toBe("number");
      expect(Number.isFinite(watch!.due_at)).toBe(true);
    }
  });
});
