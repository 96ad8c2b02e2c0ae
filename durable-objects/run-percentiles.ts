/** Nearest-rank percentiles of run samples: shared by both index backends (trace-index.ts, upstash-index.ts). */

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
