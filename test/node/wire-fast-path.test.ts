/**
 * The Worker's fast path for event validation (`parseEvent`) must answer exactly as zod does:
 * accept what `Event.safeParse` accepts, with the same data, and reject with the same message.
 * Checked on every recorded event and on many mutations of them around every limit of the schema.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { describeIssues, Event, exactMatcher, parseEvent } from "../../shared/wire";
import { scenarios } from "./wire-fixtures";

const recorded: unknown[] = scenarios.flatMap((s) => s.events);

function sameAnswer(value: unknown): void {
  const fast = parseEvent(value);
  const slow = Event.safeParse(value);
  expect(fast.success).toBe(slow.success);
  if (fast.success && slow.success) expect(fast.data).toStrictEqual(slow.data);
  if (!fast.success && !slow.success) expect(describeIssues(fast.error)).toBe(describeIssues(slow.error));
}

const isExact = exactMatcher(Event);

const lengths = [
  0, 1, 63, 64, 65, 99, 100, 101, 199, 200, 201, 299, 300, 301, 1999, 2000, 2001, 99_999, 100_000, 100_001,
  200_000, 200_001,
];
const edgeValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...lengths).map((n) => "x".repeat(n)),
  fc.constantFrom(-1, 0, -0, 1, 1.5, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e308, 1795334409.25),
  fc.constantFrom(null, true, false, "", "1", [], {}, undefined),
  fc.constantFrom(
    ...["published", "postrun", "task", "worker", "SUCCESS", "IGNORED", "warm", "cold", "nope"],
  ),
  fc.constantFrom(1, 2, "1"),
  fc
    .constantFrom(...lengths.filter((n) => n <= 10_001).concat([1000, 1001, 10_000, 10_001]))
    .map((n) => Array.from({ length: n }, (_, i) => `id-${i}`)),
  fc.record(
    { task_id: fc.constantFrom("t", "", 3), name: fc.constantFrom("app.x", "", null) },
    { requiredKeys: [] },
  ),
  fc.record(
    {
      group_id: fc.constantFrom("g", null, ""),
      tasks: fc.constantFrom(
        [],
        [{ task_id: "a", name: "b" }],
        [{ task_id: "a" }],
        [{ task_id: "a", name: "b", extra: 1 }],
      ),
      chord_callback: fc.constantFrom(null, { task_id: "c", name: "d" }, { task_id: "c" }),
      task_id: fc.constantFrom("t", 1),
      name: fc.constantFrom("n", ""),
      group_index: fc.constantFrom(0, -1, null, 1.5),
      extra: fc.constant(true),
    },
    { requiredKeys: [] },
  ),
  fc.record(
    {
      type: fc.constantFrom("ValueError", 1),
      message: fc.constantFrom("boom", null),
      stack: fc.constant("x"),
    },
    { requiredKeys: [] },
  ),
);
const keys = [
  ...Object.keys((Event.options[0] as z.ZodObject).shape),
  ...Object.keys((Event.options[1] as z.ZodObject).shape),
  "__proto__",
  "unknown_key",
];
/** A path into an event: a top-level key, or one inside a chain step, a link, the exception. */
const path = fc.oneof(
  fc.constantFrom(...keys).map((k) => [k]),
  fc.tuple(
    fc.constantFrom("chain", "callbacks", "errbacks", "registered"),
    fc.nat(2),
    fc.constantFrom(
      "task_id",
      "name",
      "group_id",
      "group_index",
      "tasks",
      "chord_callback",
      "module",
      "extra",
    ),
  ),
  fc.tuple(fc.constant("exception"), fc.constantFrom("type", "message", "extra")),
);

function mutate(event: unknown, at: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(event) as Record<string, unknown>;
  let target: Record<string | number, unknown> = copy;
  for (let i = 0; i < at.length - 1; i++) {
    const step = at[i]!;
    const next = target[step];
    if (typeof next !== "object" || next === null) target[step] = typeof at[i + 1] === "number" ? [] : {};
    target = target[step] as Record<string | number, unknown>;
  }
  const last = at[at.length - 1]!;
  if (value === undefined) delete target[last];
  else if (last === "__proto__")
    Object.defineProperty(target, last, { value, enumerable: true, configurable: true, writable: true });
  else target[last] = value;
  return copy;
}

describe("parseEvent (the Worker's fast validation path)", () => {
  it("takes the fast path for every recorded event", () => {
    expect(recorded.length).toBeGreaterThan(100);
    const slow = recorded.filter((e) => !isExact(e));
    expect(slow).toEqual([]);
    for (const e of recorded) sameAnswer(e);
  });

  it("answers exactly as zod on mutations around every limit of the schema", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...recorded),
        fc.array(fc.tuple(path, edgeValue), { minLength: 1, maxLength: 4 }),
        (event, changes) => {
          let value = event;
          for (const [at, v] of changes) value = mutate(value, at, v);
          // The Worker only ever sees what JSON.parse makes of a body: plain objects (an own
          // "__proto__" key included), never a null-prototype object or a value JSON cannot carry.
          let text: string | undefined;
          try {
            text = JSON.stringify(value);
          } catch {
            return; // a BigInt: no body can hold it
          }
          value = JSON.parse(text ?? "null");
          sameAnswer(value);
          if (isExact(value)) expect(Event.safeParse(value).success).toBe(true);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("answers exactly as zod for values that are not events at all", () => {
    for (const v of [null, 1, "event", [], [{}], {}, { kind: "task" }, { kind: "other" }]) sameAnswer(v);
  });
});
