/**
 * Formatters for values from the API. Each accepts anything — null, NaN, ±Infinity, times far
 * outside what a Date holds, negative numbers, non-strings, strings with lone surrogates — and
 * answers text: stored data or a response of an unexpected shape must never throw while a page
 * renders (Intl and toISOString throw "Invalid time value"; encodeURIComponent "URI malformed").
 */

/** Shown for a time that is present but cannot be a time (NaN, ±Infinity, beyond year ±275,760). */
export const INVALID_TIME = "invalid time";

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** Any value as a string; lone surrogates (half of a UTF-16 pair) become U+FFFD. */
export function text(value: unknown): string {
  let s: string;
  try {
    s = typeof value === "string" ? value : value === null || value === undefined ? "" : String(value);
  } catch {
    s = "";
  }
  return wellFormed(s);
}

/** Replaces lone surrogates with U+FFFD (what String.prototype.toWellFormed does). */
export function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** encodeURIComponent that never throws: a lone surrogate is sent as U+FFFD. */
export function encodeId(value: unknown): string {
  return encodeURIComponent(text(value));
}

/** decodeURIComponent that never throws: a malformed escape leaves the text as it was. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function shortName(name: unknown): string {
  const s = text(name);
  if (!s) return "(unknown)";
  return s.split(".").pop() || s;
}

export function shortId(id: unknown): string {
  const s = text(id);
  return s ? s.slice(0, 8) : "—";
}

export function duration(ms: unknown): string {
  if (ms === null || ms === undefined) return "—";
  if (!finite(ms)) return "—";
  if (ms < 0) return `−${duration(-ms)}`; // clocks of different hosts disagree
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 86_400_000) {
    const m = Math.floor(ms / 60_000);
    return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
  }
  const d = ms / 86_400_000;
  return d < 1e6 ? `${d.toFixed(1)} d` : `${d.toExponential(2)} d`;
}

/** A percentage of a 0..1 rate, "—" when it is not a number. */
export function percent(rate: unknown): string {
  return finite(rate) ? `${(rate * 100).toFixed(1)}%` : "—";
}

/** A count with thousands separators, "—" when it is not a number. */
export function count(n: unknown): string {
  return finite(n) ? n.toLocaleString() : "—";
}

// One formatter each: `toLocaleTimeString` builds a new Intl formatter per call, which cost
// ~0.15 ms per graph node.
const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const clockMinutes = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** The Date for epoch seconds, or null when there is none to show. */
function dateOf(ts: number): Date | null {
  const d = new Date(ts * 1000);
  return Number.isNaN(d.getTime()) ? null : d;
}

function formatTime(ts: unknown, f: (d: Date) => string): string {
  if (ts === null || ts === undefined) return "—";
  if (!finite(ts)) return INVALID_TIME;
  const d = dateOf(ts);
  if (!d) return INVALID_TIME;
  try {
    return f(d);
  } catch {
    return INVALID_TIME;
  }
}

/** Wall-clock time with milliseconds: tasks are often milliseconds apart. */
export function time(ts: unknown): string {
  return formatTime(ts, (d) => `${clock.format(d)}.${String(d.getMilliseconds()).padStart(3, "0")}`);
}

/** Hours and minutes, for chart buckets. */
export function hourMinute(ts: unknown): string {
  return formatTime(ts, (d) => clockMinutes.format(d));
}

export function dateTime(ts: unknown): string {
  return formatTime(ts, (d) => `${day.format(d)} ${clock.format(d)}`);
}

/** ISO 8601 (UTC), for titles and machine-readable attributes. */
export function isoTime(ts: unknown): string {
  return formatTime(ts, (d) => d.toISOString());
}

export function ago(ts: unknown, now = Date.now() / 1000): string {
  if (ts === null || ts === undefined) return "never";
  if (!finite(ts) || !dateOf(ts)) return INVALID_TIME;
  const past = Math.max(0, now - ts);
  if (past < 60) return `${Math.round(past)} s ago`;
  if (past < 3600) return `${Math.round(past / 60)} min ago`;
  if (past < 86400) return `${Math.round(past / 3600)} h ago`;
  const d = Math.round(past / 86400);
  return d < 1e6 ? `${d} d ago` : "long ago";
}
