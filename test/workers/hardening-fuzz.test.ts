/**
 * Issue 15: generated batches through the real Worker (SELF.fetch → TraceGraph shards, Fleet,
 * index). Each batch mixes valid events (hostile but valid strings, extreme valid numbers, deep
 * but allowed payloads, lone surrogates where they are normalised) with invalid ones (nesting
 * past the limit, milliseconds, far-future and pre-2000 times, lone surrogates in ids, wrong
 * types, strings over their limits, absurd numbers) over several traces. Asserted for every
 * batch: no 5xx, `rejected` is exactly the invalid events' indices, `accepted` and `duplicates`
 * count exactly the valid ones; some batches are sent twice (all duplicates the second time).
 * At the end every valid task is readable through the API, hostile GETs never 5xx, and the
 * objects' alarms run. 800 batches with shards, 400 in the per-trace layout (the suite runs in both).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TraceSnapshot } from "../../shared/api";
import { IngestResponse, MAX_BATCH_BYTES, MAX_PAYLOAD_DEPTH, MIN_TS } from "../../shared/wire";
import { shardNames } from "../../durable-objects/shards";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import type { Fleet } from "../../durable-objects/fleet";
import { settle, shards } from "./objects";

// The per-trace layout makes an object (and its database) per trace: fewer batches keep it near the sharded run time.
const BATCHES = shards === 0 ? 400 : 800;
const RUN = Math.random().toString(36).slice(2, 8);
const now = () => Date.now() / 1000;
const utf8 = new TextEncoder();

/** What one generated event becomes at send time (ids are made fresh then, so a replayed case never collides). */
interface Ctx {
  fresh(prefix: string): string;
  trace(i: number): string;
  host(i: number): string;
}
type Make = (ctx: Ctx) => unknown;
interface Item {
  valid: boolean;
  /** kind of a valid event; its trace (pool index, or null: its own) */
  kind?: "task" | "worker";
  trace?: number | null;
  make: Make;
  /** sent twice in the batch (the second is a duplicate) */
  twice?: boolean;
}

// ---- strings ----
const lone = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const hostileConstants = fc.constantFrom(
  "<script>alert(1)</script>",
  "'; DROP TABLE tasks;--",
  "\u0000",
  "../../etc/passwd",
  "%00%2F%2e%2e",
  "${x}{{x}}",
  "\u202etxt.exe",
  "__proto__",
  "constructor",
  "null",
  "\\",
  '"',
  "\r\n",
  "🦀🎉",
  "e\u0301",
  "\uFEFF",
  " ",
);
/** A valid (well-formed) hostile string. */
const hostile = fc.oneof(
  hostileConstants,
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 12 }),
);
/** A string with a lone surrogate somewhere. */
const withLone = fc
  .tuple(fc.string({ maxLength: 5 }), lone, fc.string({ maxLength: 5 }))
  .map(([a, s, b]) => a + s + b);
/** Valid text of at most `max` UTF-16 units. */
const text = (max: number) => hostile.map((s) => s.slice(0, max).replace(/[\uD800-\uDBFF]$/, "x"));
/** An id: unique prefix, hostile tail, 1..200 units. */
const idTail = text(60);

function nested(depth: number): unknown {
  let v: unknown = "leaf";
  for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v];
  return v;
}

// ---- valid values at their extremes ----
const validTs = fc.oneof(
  fc.double({ min: -30 * 86_400, max: 0, noNaN: true }).map((d) => ({ rel: d })),
  fc.constant({ abs: MIN_TS }),
  fc.constant({ rel: 86_400 - 120 }), // nearly a day ahead: still accepted
);
const tsOf = (t: { rel?: number; abs?: number }) => t.abs ?? now() + (t.rel ?? 0);
const payload = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: MAX_PAYLOAD_DEPTH - 1 }).map(nested) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      { __float__: "nan" },
      { __float__: "inf" },
      { __float__: "-inf" },
      -0,
      1e308,
      -1e308,
      5e-324,
      2 ** 53 + 1,
    ),
  },
  { weight: 1, arbitrary: withLone }, // replaced by U+FFFD, accepted
  { weight: 1, arbitrary: fc.array(withLone, { maxLength: 3 }) },
);
const isoish = fc.oneof(
  fc.constantFrom("9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "garbage", "", "2026-12-03T12:00:00+14:00"),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
);
const taskType = fc.constantFrom(
  "published",
  "received",
  "started",
  "succeeded",
  "failed",
  "retried",
  "revoked",
  "rejected",
  "unknown",
  "internal_error",
  "postrun",
);

const validTask: fc.Arbitrary<Item> = fc
  .record({
    type: taskType,
    ts: validTs,
    tail: idTail,
    trace: fc.option(fc.nat({ max: 11 }), { freq: 6 }),
    name: fc.option(text(300).filter((s) => s.length > 0)),
    host: fc.option(text(300)),
    args: fc.option(payload, { nil: undefined }),
    kwargs: fc.option(payload, { nil: undefined }),
    result: fc.option(payload, { nil: undefined }),
    // Strings at their limits are rare: a batch of many would pass the byte limit (a 413, checked too).
    exception: fc.option(
      fc.record({
        type: text(300),
        message: fc.oneof(
          { weight: 30, arbitrary: text(100) },
          { weight: 1, arbitrary: fc.constant("m".repeat(100_000)) },
          { weight: 3, arbitrary: withLone },
        ),
      }),
      { nil: undefined },
    ),
    traceback: fc.option(
      fc.oneof(
        { weight: 30, arbitrary: text(200) },
        { weight: 1, arbitrary: fc.constant("t".repeat(200_000)) },
        { weight: 3, arbitrary: withLone },
      ),
      { nil: undefined },
    ),
    retries: fc.option(fc.nat(), { nil: undefined }),
    eta: fc.option(isoish, { nil: undefined }),
    expires: fc.option(isoish, { nil: undefined }),
    runtime_ms: fc.option(
      fc.oneof(fc.constant(0), fc.constant(1e11), fc.double({ min: 0, max: 1e6, noNaN: true })),
      { nil: undefined },
    ),
    state: fc.option(fc.constantFrom("SUCCESS", "FAILURE", "RETRY", "REJECTED", "IGNORED", null), {
      nil: undefined,
    }),
    seq: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
    extra: fc.boolean(), // an unknown key: stripped, the event kept
    twice: fc.boolean().map((b) => b && Math.random() < 0.2),
  })
  .map((r) => ({
    valid: true,
    kind: "task" as const,
    trace: r.trace,
    twice: r.twice,
    make: (ctx: Ctx) => {
      const taskId = `${ctx.fresh("t")}${r.tail}`.slice(0, 200);
      return {
        v: 1,
        id: `${ctx.fresh("e")}${r.tail}`.slice(0, 200),
        kind: "task",
        type: r.type,
        ts: tsOf(r.ts),
        seq: r.seq,
        host: r.host,
        task_id: taskId,
        name: r.name,
        trace_id: r.trace === null ? null : ctx.trace(r.trace),
        ...(r.args !== undefined ? { args: r.args } : {}),
        ...(r.kwargs !== undefined ? { kwargs: r.kwargs } : {}),
        ...(r.result !== undefined ? { result: r.result } : {}),
        ...(r.exception ? { exception: r.exception } : {}),
        ...(r.traceback !== undefined ? { traceback: r.traceback } : {}),
        ...(r.retries !== undefined ? { retries: r.retries } : {}),
        ...(r.eta !== undefined ? { eta: r.eta } : {}),
        ...(r.expires !== undefined ? { expires: r.expires } : {}),
        ...(r.runtime_ms !== undefined ? { runtime_ms: r.runtime_ms } : {}),
        ...(r.state !== undefined ? { state: r.state } : {}),
        ...(r.extra ? { surprise: { nested: [1, 2] } } : {}),
      };
    },
  }));

const validWorker: fc.Arbitrary<Item> = fc
  .record({
    type: fc.constantFrom("online", "heartbeat", "shutting_down", "offline"),
    ts: validTs,
    host: fc.nat({ max: 5 }),
    pid: fc.option(fc.nat({ max: 4 })),
    freq: fc.option(
      fc.oneof(fc.constant(86_400), fc.constant(1e-9), fc.double({ min: 0.5, max: 60, noNaN: true })),
    ),
    how: fc.option(fc.constantFrom("warm", "cold")),
    active: fc.option(
      fc.array(
        idTail.map((t) => `a${t}`.slice(0, 200)),
        { maxLength: 3 },
      ),
    ),
    queues: fc.option(fc.array(text(300), { maxLength: 3 })),
    registered: fc.option(fc.array(fc.record({ name: text(299).map((s) => `n${s}`) }), { maxLength: 3 })),
  })
  .map((r) => ({
    valid: true,
    kind: "worker" as const,
    make: (ctx: Ctx) => ({
      v: 1,
      id: ctx.fresh("w"),
      kind: "worker",
      type: r.type,
      ts: tsOf(r.ts),
      seq: 1,
      host: ctx.host(r.host),
      pid: r.pid,
      freq: r.freq,
      how: r.how,
      active: r.active,
      queues: r.queues,
      registered: r.registered,
    }),
  }));

/** Invalid events: each is refused, whatever else the batch holds. */
const invalid: fc.Arbitrary<Item> = fc
  .oneof(
    fc
      .integer({ min: MAX_PAYLOAD_DEPTH + 1, max: 5_000 })
      .map((d): Make => (ctx) => ({ ...base(ctx), args: [nested(d)] })),
    fc
      .integer({ min: MAX_PAYLOAD_DEPTH + 1, max: 2_000 })
      .map((d): Make => (ctx) => ({ ...base(ctx), result: nested(d) })),
    fc.constant<Make>((ctx) => ({ ...base(ctx), ts: Date.now() })), // milliseconds
    fc.constant<Make>((ctx) => ({ ...base(ctx), ts: 8.64e12 + 1 })),
    fc.constantFrom(-1, -0, 0, 1, MIN_TS - 1, 1e308).map((ts): Make => (ctx) => ({ ...base(ctx), ts })),
    fc
      .integer({ min: 2, max: 36_500 })
      .map((days): Make => (ctx) => ({ ...base(ctx), ts: now() + days * 86_400 })),
    fc.constantFrom("task_id", "trace_id", "name", "host", "root_id", "queue").chain((field) =>
      withLone.map((s): Make => (ctx) => ({
        ...base(ctx),
        [field]: field === "task_id" || field === "trace_id" ? ctx.fresh("x") + s : s,
      })),
    ),
    fc
      .constantFrom<Record<string, unknown>>(
        { task_id: 42 },
        { seq: -1 },
        { seq: 1.5 },
        { v: 2 },
        { kind: "bogus" },
        { type: "exploded" },
        { id: "" },
        { ts: "1795334409" },
        { ts: null },
        { args: undefined, received_ts: 1e13 },
        { started_ts: -5 },
        { retries: -1 },
        { group_index: 0.5 },
        { runtime_ms: 1e15 },
        { runtime_ms: -1 },
        { state: "MAYBE" },
        { chain: "not-a-list" },
        { exception: { type: 1 } },
      )
      .map((patch): Make => (ctx) => ({ ...base(ctx), ...patch })),
    fc.constantFrom(null, 42, "event", [], true, {}).map(
      (v): Make =>
        () =>
          v,
    ),
    fc
      .constantFrom<[string, number]>(
        ["task_id", 201],
        ["name", 301],
        ["traceback", 200_001],
        ["queue", 301],
        ["eta", 65],
      )
      .map(([field, n]): Make => (ctx) => ({
        ...base(ctx),
        [field]: field === "task_id" ? (ctx.fresh("l") + "x".repeat(n)).slice(0, n) : "y".repeat(n),
      })),
    fc
      .constantFrom<Record<string, unknown>>(
        { freq: 0 },
        { freq: -2 },
        { freq: 1e300 },
        { freq: 86_401 },
        { ts: Date.now() },
        { host: "" },
        { concurrency: -1 },
        { how: "lukewarm" },
      )
      .map((patch): Make => (ctx) => ({
        v: 1,
        id: ctx.fresh("bw"),
        kind: "worker",
        type: "heartbeat",
        ts: now(),
        seq: 1,
        host: ctx.host(0),
        ...patch,
      })),
  )
  .map((make) => ({ valid: false, make }));

function base(ctx: Ctx): Record<string, unknown> {
  return {
    v: 1,
    id: ctx.fresh("b"),
    kind: "task",
    type: "published",
    ts: now() - 1,
    seq: 1,
    host: null,
    task_id: ctx.fresh("bt"),
    name: "app.bad",
    trace_id: ctx.trace(0),
  };
}

const batchArb = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: validTask },
    { weight: 1, arbitrary: validWorker },
    { weight: 2, arbitrary: invalid },
  ),
  {
    minLength: 1,
    maxLength: 25,
  },
);

async function post(events: unknown[]): Promise<{ status: number; text: string }> {
  const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  return { status: res.status, text: await res.text() };
}

describe("fuzzed batches through the Worker", () => {
  it(
    `${BATCHES} batches: no 5xx, exact accounting, every valid task readable`,
    { timeout: 600_000 },
    async () => {
      let counter = 0;
      const pool = Array.from(
        { length: 12 },
        (_, i) => `fz-${RUN}-${i}-${["<b>", "é", "🦀", "a b", "%41", "x"][i % 6]}`,
      );
      const ctx: Ctx = {
        fresh: (prefix) => `${prefix}${RUN}${(++counter).toString(36)}-`,
        trace: (i) => pool[i]!,
        host: (i) => `fz-${RUN}-w${i}@h`,
      };
      /** Every valid task event stored: trace key → task ids. */
      const expected = new Map<string, Set<string>>();
      const stats = { batches: 0, events: 0, valid: 0, refused: 0, resent: 0, tooLarge: 0, bodyBytes: 0 };

      await fc.assert(
        fc.asyncProperty(batchArb, fc.boolean(), async (items, resend) => {
          const events: unknown[] = [];
          const validIdx: number[] = [];
          const invalidIdx: number[] = [];
          let dupes = 0;
          const tasks: { trace: string; task: string }[] = [];
          for (const item of items) {
            const e = item.make(ctx);
            events.push(e);
            (item.valid ? validIdx : invalidIdx).push(events.length - 1);
            if (item.valid && item.kind === "task") {
              const t = e as { task_id: string; trace_id: string | null };
              tasks.push({ trace: t.trace_id ?? t.task_id, task: t.task_id });
            }
            if (item.valid && item.twice) {
              events.push(e);
              dupes++;
            }
          }
          const bytes = utf8.encode(JSON.stringify({ events })).byteLength;
          const { status, text } = await post(events);
          stats.batches++;
          stats.events += events.length;
          stats.bodyBytes += bytes;
          if (bytes > MAX_BATCH_BYTES) {
            // Several maximal strings in one batch: over the byte limit, refused whole, and said so.
            expect(status, text).toBe(413);
            stats.tooLarge++;
            return;
          }
          expect(status, text).toBe(202);
          const body = IngestResponse.parse(JSON.parse(text));
          expect(
            body.rejected.map((r) => r.index),
            text,
          ).toEqual(invalidIdx);
          for (const r of body.rejected) expect(r.error.length).toBeGreaterThan(0);
          expect(body.accepted, text).toBe(validIdx.length);
          expect(body.duplicates, text).toBe(dupes);
          stats.valid += validIdx.length;
          stats.refused += invalidIdx.length;
          for (const t of tasks) {
            const set = expected.get(t.trace) ?? new Set<string>();
            set.add(t.task);
            expected.set(t.trace, set);
          }
          if (resend) {
            // The producer did not hear the answer and sends the batch again: nothing stored twice.
            const again = await post(events);
            expect(again.status, again.text).toBe(202);
            const body2 = IngestResponse.parse(JSON.parse(again.text));
            expect(body2.accepted).toBe(0);
            expect(body2.duplicates).toBe(validIdx.length + dupes);
            expect(body2.rejected.map((r) => r.index)).toEqual(invalidIdx);
            stats.resent++;
          }
        }),
        { numRuns: BATCHES, endOnFailure: true },
      );

      await settle();
      // Every valid task is readable: each pooled trace's snapshot, and tasks by id.
      let checkedTasks = 0;
      for (const [traceId, ids] of expected) {
        if (!pool.includes(traceId) && Math.random() > 0.05) continue; // own-trace tasks: a sample
        const res = await exports.default.fetch(`http://127.0.0.1/api/traces/${encodeURIComponent(traceId)}`);
        expect(res.status, traceId).toBe(200);
        const snap = TraceSnapshot.parse(await res.json());
        const nodes = new Set(snap.nodes.map((x) => x.id));
        for (const id of ids) expect(nodes.has(id), `${traceId} / ${id}`).toBe(true);
        checkedTasks += ids.size;
      }
      let byId = 0;
      for (const [, ids] of [...expected].slice(0, 40)) {
        const id = [...ids][0]!;
        const res = await exports.default.fetch(`http://127.0.0.1/api/tasks/${encodeURIComponent(id)}`);
        expect(res.status, id).toBe(200);
        byId++;
      }
      // Hostile reads never 5xx.
      for (const path of [
        "%ED%A0%80",
        "%FF%FE",
        "%00",
        "..%2F..%2F",
        "%F0%9F%A6%80",
        "x".repeat(2000),
        "%",
        "%E2%82",
      ])
        for (const prefix of [
          "/api/traces/",
          "/api/tasks/",
          "/api/workers/",
          "/api/traces/x/anomalies?trace_id=",
        ]) {
          const res = await exports.default.fetch(`http://127.0.0.1${prefix}${path}`);
          expect(res.status, prefix + path).toBeLessThan(500);
        }
      for (const path of ["/api/traces", "/api/workers", "/api/stats", "/api/registry", "/api/anomalies"]) {
        const res = await exports.default.fetch(`http://127.0.0.1${path}`);
        expect(res.status, path).toBe(200);
      }
      // The objects' alarms run over what was stored.
      await runInDurableObject(env.FLEET.getByName("global"), (f: Fleet) => f.alarm());
      for (const name of shards ? shardNames(shards) : [...expected.keys()].slice(0, 20))
        await runInDurableObject(env.TRACE_GRAPH.getByName(name), (g: TraceGraph) => g.alarm());
      console.log(
        JSON.stringify({
          fuzz: {
            layout: shards ? `${shards} shards` : "per-trace",
            ...stats,
            traces: expected.size,
            checkedTasks,
            byId,
          },
        }),
      );
    },
  );
});
