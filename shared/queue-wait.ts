/**
 * How long a task waited for a worker: from when it was published (or, for an ETA/countdown task,
 * when it became due) until a worker started it. It answers "are my workers keeping up?", so it
 * covers both the time in the broker (published → received) and the time in the worker's prefetch
 * buffer waiting for a free pool slot (received → started): a task that sat in either was waiting.
 *
 * Clocks: `published` is stamped by the publisher (a client, or a task on some worker), `received`
 * and `started` by the worker that ran it. Across machines the publisher's clock may be ahead, which
 * makes published → started too short or negative. received → started is all on the worker's clock
 * and is a lower bound of the wait, so the result is the larger of the two, clamped at 0: a skewed
 * client can never push the wait below what the worker itself saw. (A publisher clock that is
 * behind makes the wait look longer; nothing in the events can tell that apart from a real wait.)
 * Without a published time (the publisher is not instrumented) it is received → started alone.
 */
export interface QueueWaitInput {
  published_at: number | null;
  received_at: number | null;
  started_at: number | null;
  /** ISO time the task was scheduled for (apply_async eta/countdown), if any. */
  eta: string | null;
  /** Attempts: a record's eta is its last attempt's, so only a single attempt's eta applies to its start. */
  attempt_count: number;
}

/** Milliseconds from published (or due) to the first start, never negative; null when it never started or nothing marks its arrival. */
export function queueWaitMs(r: QueueWaitInput): number | null {
  if (r.started_at === null) return null;
  const etaMs = r.eta && r.attempt_count <= 1 ? Date.parse(r.eta) : NaN;
  const due = Number.isFinite(etaMs) ? etaMs / 1000 : null;
  // A task scheduled for later was not waiting for a worker before it was due.
  const from = (t: number | null) => (t === null ? null : due === null ? t : Math.max(t, due));
  const waits = [from(r.published_at), from(r.received_at)]
    .filter((t): t is number => t !== null)
    .map((t) => r.started_at! - t);
  if (waits.length === 0) return null;
  // To 10 µs: epoch seconds as doubles are only good to a few tenths of a µs, differences twice that.
  return Math.round(Math.max(0, ...waits) * 1e5) / 1e2;
}
