/**
 * The UI's formatters take any value the API could hold (web/src/format.ts): none throws, and the
 * ones that used to ("Invalid time value", "URI malformed") say what they show instead.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as f from "../../web/src/format";

const LONE_HIGH = "trace-\uD800-x";
const LONE_LOW = "\uDC00";
const extremes: unknown[] = [
  null,
  undefined,
  NaN,
  Infinity,
  -Infinity,
  0,
  -1,
  -1e300,
  1e300,
  8.64e12,
  8.64e12 + 1,
  1e15,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  -8.64e12 - 1,
  "",
  "x",
  LONE_HIGH,
  LONE_LOW,
  "a".repeat(100_000),
  {},
  [],
  { $float: "NaN" },
  true,
  Symbol("s"),
  10n,
  () => 1,
];
const formatters: Array<[string, (v: unknown) => string]> = [
  ["time", f.time],
  ["dateTime", f.dateTime],
  ["hourMinute", f.hourMinute],
  ["isoTime", f.isoTime],
  ["ago", (v) => f.ago(v)],
  ["duration", f.duration],
  ["percent", f.percent],
  ["count", f.count],
  ["shortName", f.shortName],
  ["shortId", f.shortId],
  ["text", f.text],
  ["encodeId", f.encodeId],
  // decodeSegment takes a URL segment, always a string: other values are given as the text formatter makes them.
  ["decodeSegment", (v) => f.decodeSegment(typeof v === "string" ? v : f.text(v))],
];

describe("formatters tolerate any value", () => {
  it("never throw and always answer a string, for the extremes and for anything fast-check makes", () => {
    for (const [name, fn] of formatters)
      for (const v of extremes)
        expect(typeof fn(v), `${name}(${String(typeof v === "symbol" ? "symbol" : v).slice(0, 20)})`).toBe(
          "string",
        );
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.double(), fc.string({ unit: "binary" }), fc.bigInt()), (v) => {
        for (const [, fn] of formatters) expect(typeof fn(v)).toBe("string");
      }),
      { numRuns: 2000 },
    );
  });

  it("show times a Date cannot hold as 'invalid time', missing ones as '—'", () => {
    for (const fn of [f.time, f.dateTime, f.hourMinute, f.isoTime]) {
      expect(fn(8.64e12 + 1)).toBe(f.INVALID_TIME); // past year 275,760: Intl threw "Invalid time value"
      expect(fn(NaN)).toBe(f.INVALID_TIME);
      expect(fn(Infinity)).toBe(f.INVALID_TIME);
      expect(fn("1700000000")).toBe(f.INVALID_TIME);
      expect(fn(null)).toBe("—");
      expect(fn(undefined)).toBe("—");
      expect(fn(1_700_000_000)).not.toBe(f.INVALID_TIME);
    }
    expect(f.isoTime(0)).toBe("1970-01-01T00:00:00.000Z");
    expect(f.isoTime(-8.64e12)).toBe("-271821-04-20T00:00:00.000Z"); // the earliest a Date holds
    expect(f.ago(1e13)).toBe(f.INVALID_TIME);
    expect(f.ago(null)).toBe("never");
    expect(f.ago(100, 100 + 86400 * 3)).toBe("3 d ago");
  });

  it("durations: missing or not a number is '—', negative keeps its sign, huge stays short", () => {
    expect(f.duration(NaN)).toBe("—");
    expect(f.duration(Infinity)).toBe("—");
    expect(f.duration(-1500)).toBe("−1.50 s");
    expect(f.duration(1e300)).toMatch(/e\+\d+ d$/);
    expect(f.duration(3 * 86_400_000)).toBe("3.0 d");
    expect(f.duration(90_000)).toBe("1 min 30 s");
    expect(f.percent(0.125)).toBe("12.5%");
    expect(f.percent(NaN)).toBe("—");
  });

  it("ids with lone surrogates encode (as U+FFFD) instead of throwing 'URI malformed'; bad escapes decode to themselves", () => {
    expect(() => encodeURIComponent(LONE_HIGH)).toThrow(URIError);
    expect(f.encodeId(LONE_HIGH)).toBe("trace-%EF%BF%BD-x");
    expect(f.encodeId(LONE_LOW)).toBe("%EF%BF%BD");
    expect(f.encodeId("😀/ok?")).toBe(encodeURIComponent("😀/ok?")); // a real pair is kept
    expect(f.text(`a${LONE_HIGH}`)).toBe("atrace-\uFFFD-x");
    expect(f.decodeSegment("%E0%A4%A")).toBe("%E0%A4%A");
    expect(f.decodeSegment("a%2Fb")).toBe("a/b");
    expect(f.shortName("app.tasks.add")).toBe("add");
    expect(f.shortName("app.")).toBe("app.");
    expect(f.shortName(null)).toBe("(unknown)");
    expect(f.shortId(null)).toBe("—");
  });
});
