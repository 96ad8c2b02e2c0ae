export function shortName(name: string | null | undefined): string {
  if (!name) return "(unknown)";
  return name.split(".").pop() ?? name;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

// One formatter each: `toLocaleTimeString` builds a new Intl formatter per call, which cost
// ~0.15 ms per graph node.
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** Wall-clock time with milliseconds: tasks are often milliseconds apart. */
export function time(ts: number | null | undefined): string {
  if (ts === null || ts === undefined) return "—";
  const d = new Date(ts * 1000);
  return `${clock.format(d)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

export function dateTime(ts: number | null | undefined): string {
  if (ts === null || ts === undefined) return "—";
  const d = new Date(ts * 1000);
  return `${day.format(d)} ${clock.format(d)}`;
}

export function ago(ts: number | null | undefined, now = Date.now() / 1000): string {
  if (ts === null || ts === undefined) return "never";
  const s = Math.max(0, now - ts);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
