/** Synthetic but realistic wire events: tasks with the five-event lifecycle of a real Celery run. */
import type { TaskEvent } from "../shared/wire";

const LIFECYCLE = ["published", "received", "started", "succeeded", "postrun"] as const;

/**
 * `tasks` tasks of one trace, spawned by the root, 5 events each, in lifecycle order per task.
 * `first` > 0 gives the next tasks of the same trace (to build a very large trace in slices).
 */
export function syntheticTrace(
  traceId: string,
  tasks: number,
  startTs = 1_795_000_000,
  first = 0,
): TaskEvent[] {
  const events: TaskEvent[] = [];
  for (let i = first; i < first + tasks; i++) {
    const taskId = i === 0 ? traceId : `${traceId}-t${i}`;
    LIFECYCLE.forEach((type, k) => {
      events.push({
        v: 1,
        id: `${taskId}-e${k}`,
        kind: "task",
        type,
        ts: startTs + i * 0.01 + k * 0.001,
        seq: i * 5 + k,
        host: type === "published" ? null : "bench@host",
        pid: 100,
        task_id: taskId,
        name: i === 0 ? "app.root" : `app.step${i % 7}`,
        trace_id: traceId,
        root_id: traceId,
        parent_id: i === 0 ? null : traceId,
        group_id: i > 0 && i % 10 < 5 ? `${traceId}-g${Math.floor(i / 10)}` : null,
        retries: 0,
        queue: "celery",
        args: [i, i + 1],
        kwargs: {},
        ...(type === "succeeded" ? { result: i * 2 } : {}),
        ...(type === "postrun" ? { state: "SUCCESS" as const, runtime_ms: 3.2 } : {}),
      });
    });
  }
  return events;
}

/** Interleaves the events of `parallel` consecutive tasks, like a busy worker pool does. */
export function interleave(events: TaskEvent[], parallel = 20): TaskEvent[] {
  const out: TaskEvent[] = [];
  const perTask = 5;
  for (let base = 0; base < events.length; base += parallel * perTask) {
    const chunk = events.slice(base, base + parallel * perTask);
    for (let k = 0; k < perTask; k++)
      for (let t = 0; t * perTask + k < chunk.length; t++) out.push(chunk[t * perTask + k]!);
  }
  return out;
}
