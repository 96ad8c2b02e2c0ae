/**
 * Time in the objects: the one alarm each object has, and the TraceGraph's table of deadlines.
 *
 * `OneAlarm` is the arming policy every object shares. Setting or deleting an alarm is a row
 * written, and deadlines move later all the time (a heartbeat, a flush that is rescheduled), so the
 * alarm only ever moves earlier: an alarm that fires early finds nothing due and re-arms, and one no
 * longer needed fires once for nothing (cheaper than deleting it, then setting another). A time
 * the runtime would refuse (NaN, years away) is clamped to a day ahead, so no stored value can make
 * every alarm throw.
 *
 * `Deadlines` owns the `deadlines` table (retention drops, whole-graph checks) with typed keys, so
 * no class writes it with strings of its own.
 */
import type { Sql } from "./sql";

/** An alarm is never set further ahead than this. */
export const MAX_ALARM_AHEAD_MS = 86_400_000;

export class OneAlarm {
  /** Where the alarm is set, as far as this instance knows (undefined: ask the storage). */
  private at: number | null | undefined;

  constructor(
    private readonly storage: DurableObjectStorage,
    /** Counts the row an alarm write costs (the storage meter). */
    private readonly onWrite: () => void,
    private readonly label: string,
  ) {}

  /** The alarm that fired is gone: the next `atOrBefore` sets one from the tables again. */
  fired(): void {
    this.at = undefined;
  }

  /** Storage was wiped (deleteAll): the alarm went with it. */
  forget(): void {
    this.at = undefined;
  }

  /**
   * Makes sure an alarm fires at or before the earliest of these times (epoch seconds; nulls and
   * non-finite values are skipped, and logged). Never moves it later.
   */
  async atOrBefore(times: readonly (number | null | undefined)[]): Promise<void> {
    const finite = times.filter((t): t is number => typeof t === "number" && Number.isFinite(t));
    if (finite.length !== times.filter((t) => t !== null && t !== undefined).length)
      console.warn(
        `${this.label}: ignoring deadlines that are not times: ${JSON.stringify(times.map(String))}`,
      );
    if (finite.length === 0) return;
    const next = Math.min(Math.ceil(Math.min(...finite) * 1000), Date.now() + MAX_ALARM_AHEAD_MS);
    if (this.at === undefined) this.at = await this.storage.getAlarm();
    if (this.at !== null && this.at >= Date.now() && this.at <= next) return;
    this.at = next;
    this.onWrite();
    try {
      await this.storage.setAlarm(next);
    } catch (err) {
      this.at = undefined; // read again at the next arming
      console.error(`${this.label}: could not set the alarm to ${next}`, err);
    }
  }
}

/** What a deadline is for. */
export type Deadline = { kind: "drop"; day: number } | { kind: "graph_check"; traceId: string };

type DeadlineRow = {
  key: string;
  kind: string;
  trace_id: string | null;
};

const keyOf = (d: Deadline) => (d.kind === "drop" ? `drop:${d.day}` : `graph_check:${d.traceId}`);

/** The TraceGraph's `deadlines` table (migrations in trace-graph.ts). */
export class Deadlines {
  constructor(private readonly sql: Sql) {}

  /** Sets a deadline, or moves an existing one earlier (`earliest`) or leaves it (`keep`). */
  set(d: Deadline, dueAt: number, when: "earliest" | "keep"): void {
    const traceId = d.kind === "graph_check" ? d.traceId : null;
    if (when === "keep")
      this
        .sql`INSERT OR IGNORE INTO deadlines (key, kind, trace_id, due_at) VALUES (${keyOf(d)}, ${d.kind}, ${traceId}, ${dueAt})`;
    else
      this
        .sql`INSERT INTO deadlines (key, kind, trace_id, due_at) VALUES (${keyOf(d)}, ${d.kind}, ${traceId}, ${dueAt})
               ON CONFLICT (key) DO UPDATE SET due_at = MIN(deadlines.due_at, excluded.due_at)`;
  }

  /** The earliest deadline (epoch seconds), if any. */
  earliest(): number | null {
    return this.sql<{ due: number | null }>`SELECT MIN(due_at) AS due FROM deadlines`.one().due;
  }

  /** Deadlines due by `now`, earliest first. */
  due(now: number): Deadline[] {
    const out: Deadline[] = [];
    for (const r of this.sql<DeadlineRow>`
      SELECT key, kind, trace_id FROM deadlines WHERE due_at <= ${now + 0.001} ORDER BY due_at`) {
      if (r.kind === "drop") out.push({ kind: "drop", day: Number(r.key.slice("drop:".length)) });
      else if (r.kind === "graph_check" && r.trace_id !== null)
        out.push({ kind: "graph_check", traceId: r.trace_id });
    }
    return out;
  }

  done(d: Deadline): void {
    this.sql`DELETE FROM deadlines WHERE key = ${keyOf(d)}`;
  }

  /** Forgets the graph checks of traces that are gone (retention). */
  forgetTraces(traceIdsJson: string): void {
    this
      .sql`DELETE FROM deadlines WHERE kind = 'graph_check' AND trace_id IN (SELECT value FROM json_each(${traceIdsJson}))`;
  }

  /** For tests: makes every deadline of this kind due now. */
  makeDue(kind: Deadline["kind"]): number {
    return this.sql`UPDATE deadlines SET due_at = 0 WHERE kind = ${kind}`.rowsWritten;
  }
}
