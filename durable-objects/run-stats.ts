/**
 * Run statistics from (name, minute) groups — counts and capped runtime / queue-wait samples —
 * the same way for both index backends (trace-index.ts, upstash-index.ts): each reads its rows,
 * then gathers them per name (`addRunRow`) and derives the registry's statistics (`runStatsOf`)
 * and the dashboard's top names (`topNamesOf`) here, so their answers cannot drift apart.
 */
import type { NameStat } from "../shared/api";

/** p50/p95/p99 of runtime and of queue wait (ms; null without samples). */
export interface RunPercentiles {
  runtime_p50_ms: number | null;
  runtime_p95_ms: number | null;
  runtime_p99_ms: number | null;
  queue_wait_p50_ms: number | null;
  queue_wait_p95_ms: number | null;
  queue_wait_p99_ms: number | null;
}

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? null;
}

/** Nearest-rank p50/p95/p99 of the sampled runtimes and queue waits (sorts them in place). */
export function runPercentiles(runtimes: number[], waits: number[]): RunPercentiles {
  runtimes.sort((a, b) => a - b);
  waits.sort((a, b) => a - b);
  return {
    runtime_p50_ms: percentile(runtimes, 50),
    runtime_p95_ms: percentile(runtimes, 95),
    runtime_p99_ms: percentile(runtimes, 99),
    queue_wait_p50_ms: percentile(waits, 50),
    queue_wait_p95_ms: percentile(waits, 95),
    queue_wait_p99_ms: percentile(waits, 99),
  };
}

/** Per-name run statistics; `registered` comes from the Fleet. */
export interface RunStats extends RunPercentiles {
  name: string;
  runs: number;
  failures: number;
  last_run_at: number | null;
}

/** One name's finished runs, gathered over its (name, minute) groups. */
export interface NameRuns {
  runs: number;
  failures: number;
  runtimes: number[];
  waits: number[];
  last: number;
}

/** Adds one (name, minute) group to its name. */
export function addRunRow(
  into: Map<string, NameRuns>,
  row: { name: string; finished: number; failed: number; runtimes: number[]; waits: number[]; last: number },
): void {
  const s = into.get(row.name) ?? { runs: 0, failures: 0, runtimes: [], waits: [], last: 0 };
  s.runs += row.finished;
  s.failures += row.failed;
  for (const v of row.runtimes) s.runtimes.push(v);
  for (const v of row.waits) s.waits.push(v);
  s.last = Math.max(s.last, row.last);
  into.set(row.name, s);
}

/** The registry's per-name statistics (sorts each name's samples in place). */
export function runStatsOf(byName: Map<string, NameRuns>): RunStats[] {
  return [...byName].map(([name, s]) => ({
    name,
    runs: s.runs,
    failures: s.failures,
    ...runPercentiles(s.runtimes, s.waits),
    last_run_at: s.last,
  }));
}

/**
 * The names that ran most, the slowest by p95 runtime and those that waited longest for a worker
 * by p95 queue wait, `limit` each; ties by name.
 */
export function topNamesOf(
  byName: Map<string, NameRuns>,
  limit: number,
): { busiest: NameStat[]; slowest: NameStat[]; longestWait: NameStat[] } {
  const stats = [...byName].map(([name, s]) => ({
    name,
    runs: s.runs,
    failures: s.failures,
    ...runPercentiles(s.runtimes, s.waits),
  }));
  const alphabetical = (a: NameStat, b: NameStat) => (a.name < b.name ? -1 : 1);
  const top = (value: (s: (typeof stats)[number]) => number | null) =>
    stats
      .filter((s) => value(s) !== null)
      .sort((a, b) => value(b)! - value(a)! || alphabetical(a, b))
      .slice(0, limit);
  return {
    busiest: [...stats].sort((a, b) => b.runs - a.runs || alphabetical(a, b)).slice(0, limit),
    slowest: top((s) => s.runtime_p95_ms),
    longestWait: top((s) => s.queue_wait_p95_ms),
  };
}
