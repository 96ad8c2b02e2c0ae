/**
 * Read API response shapes and WebSocket messages (DESIGN.md, "Read API and live updates").
 * The Worker answers with these; the SPA parses them. Pure zod, no runtime-specific imports.
 */
import { z } from "zod";
import { ExceptionInfo, RegisteredTask } from "./wire";

/**
 * Task states: Celery's own plus the ones stemtrace derives (CELERY.md §4).
 * PENDING = published (or announced) and not yet received.
 */
export const TaskState = z.enum([
  "PENDING",
  "SCHEDULED",
  "RECEIVED",
  "STARTED",
  "RETRY",
  "SUCCESS",
  "FAILURE",
  "REVOKED",
  "REJECTED",
  "IGNORED",
  "UNREGISTERED",
  "INTERRUPTED",
  "LOST",
  "NOT_RUN",
  "REPLACED",
]);
export type TaskState = z.infer<typeof TaskState>;

export const EdgeKind = z.enum(["chain", "spawn", "callback", "errback", "chord"]);
export type EdgeKind = z.infer<typeof EdgeKind>;

const Ts = z.number().nullable();

/** One task in a trace graph. `placeholder` = announced by another task, no event of its own yet. */
export const GraphNode = z.object({
  id: z.string(),
  name: z.string().nullable(),
  state: TaskState,
  placeholder: z.boolean(),
  retries: z.number().int(),
  worker: z.string().nullable(),
  queue: z.string().nullable(),
  parent_id: z.string().nullable(),
  group_id: z.string().nullable(),
  group_index: z.number().int().nullable(),
  published_at: Ts,
  received_at: Ts,
  started_at: Ts,
  finished_at: Ts,
  eta: z.string().nullable(),
  runtime_ms: z.number().nullable(),
  exception_type: z.string().nullable(),
  /** Why a derived state was given, e.g. "chord header task 1a2b… failed". */
  state_reason: z.string().nullable(),
  anomaly: z.string().nullable(),
  /**
   * Each run of a task that ran more than once (retries, redeliveries): when it started and ended.
   * Between them the task waited (a retry countdown), which is not running time.
   */
  runs: z.array(z.object({ started_at: Ts, finished_at: Ts, state: TaskState })).optional(),
});
export type GraphNode = z.infer<typeof GraphNode>;

/** GROUP or CHORD. A CHORD's callback is `callback_id`; its state summarizes header and callback. */
export const GraphContainer = z.object({
  id: z.string(),
  kind: z.enum(["GROUP", "CHORD"]),
  state: TaskState,
  members: z.array(z.string()),
  callback_id: z.string().nullable(),
  /** Expected header size when known (max group_index + 1). */
  size: z.number().int().nullable(),
});
export type GraphContainer = z.infer<typeof GraphContainer>;

export const GraphEdge = z.object({
  id: z.string(),
  source: z.string(),
  target: z.string(),
  kind: EdgeKind,
});
export type GraphEdge = z.infer<typeof GraphEdge>;

export const TraceSummary = z.object({
  trace_id: z.string(),
  state: TaskState,
  root_task_id: z.string().nullable(),
  root_name: z.string().nullable(),
  task_count: z.number().int(),
  failure_count: z.number().int(),
  started_at: Ts,
  updated_at: z.number(),
  finished_at: Ts,
  duration_ms: z.number().nullable(),
  workers: z.array(z.string()),
  task_names: z.array(z.string()),
  anomaly_count: z.number().int(),
  /** Announced tasks that will never run (NOT_RUN placeholders): not in `task_count`, which counts tasks that were sent. */
  not_run_count: z.number().int().optional(),
});
export type TraceSummary = z.infer<typeof TraceSummary>;

export const TraceSnapshot = z.object({
  trace_id: z.string(),
  seq: z.number().int(),
  summary: TraceSummary,
  nodes: z.array(GraphNode),
  containers: z.array(GraphContainer),
  edges: z.array(GraphEdge),
  /** Set when the trace has more tasks than one snapshot carries: the earliest `shown` are included. */
  truncated: z.object({ shown: z.number().int(), total: z.number().int() }).optional(),
});
export type TraceSnapshot = z.infer<typeof TraceSnapshot>;

export const AttemptDetail = z.object({
  retries: z.number().int(),
  delivery: z.number().int(),
  state: TaskState,
  worker: z.string().nullable(),
  pid: z.number().int().nullable(),
  published_at: Ts,
  received_at: Ts,
  started_at: Ts,
  finished_at: Ts,
  eta: z.string().nullable(),
  runtime_ms: z.number().nullable(),
  exception: ExceptionInfo.nullable(),
  traceback: z.string().nullable(),
  retry_reason: z.string().nullable(),
});
export type AttemptDetail = z.infer<typeof AttemptDetail>;

export const TaskLink = z.object({
  /** A task id; for a chord callback's parent, the chord's group id (`container` is then set). */
  task_id: z.string(),
  name: z.string().nullable(),
  state: TaskState,
  kind: EdgeKind.nullable(),
  /** The link is a GROUP/CHORD of the graph, not a task: a chord callback's origin is its chord. */
  container: z.object({ kind: z.enum(["GROUP", "CHORD"]), size: z.number().int().nullable() }).optional(),
});
export type TaskLink = z.infer<typeof TaskLink>;

export const TaskEventRecord = z.object({
  type: z.string(),
  ts: z.number(),
  host: z.string().nullable(),
  pid: z.number().nullable(),
  retries: z.number().int().nullable(),
});

export const TaskDetail = z.object({
  trace_id: z.string(),
  task: GraphNode,
  attempts: z.array(AttemptDetail),
  args: z.unknown(),
  kwargs: z.unknown(),
  result: z.unknown(),
  exception: ExceptionInfo.nullable(),
  traceback: z.string().nullable(),
  parent: TaskLink.nullable(),
  children: z.array(TaskLink),
  events: z.array(TaskEventRecord),
  names: z.array(z.string()),
});
export type TaskDetail = z.infer<typeof TaskDetail>;

export const TraceList = z.object({ traces: z.array(TraceSummary), next_cursor: z.string().nullable() });
export type TraceList = z.infer<typeof TraceList>;

export const TaskSearchHit = z.object({
  task_id: z.string(),
  name: z.string().nullable(),
  trace_id: z.string(),
  state: TaskState,
  updated_at: z.number(),
});
export const TaskSearch = z.object({ tasks: z.array(TaskSearchHit) });
export type TaskSearch = z.infer<typeof TaskSearch>;

/** How the task list can be ordered (newest first / largest first). */
export const TaskSort = z.enum(["published", "started", "runtime", "queue_wait"]);
export type TaskSort = z.infer<typeof TaskSort>;

/** One row of `GET /api/tasks` (without `q`): every task, not every trace (Flower's main page). */
export const TaskRow = z.object({
  task_id: z.string(),
  trace_id: z.string(),
  name: z.string().nullable(),
  state: TaskState,
  worker: z.string().nullable(),
  queue: z.string().nullable(),
  published_at: Ts,
  received_at: Ts,
  started_at: Ts,
  finished_at: Ts,
  runtime_ms: z.number().nullable(),
  /** started − published (never below received → started, never negative): time waiting for a worker. */
  queue_wait_ms: z.number().nullable(),
  retries: z.number().int(),
});
export type TaskRow = z.infer<typeof TaskRow>;

export const TaskListPage = z.object({ tasks: z.array(TaskRow), next_cursor: z.string().nullable() });
export type TaskListPage = z.infer<typeof TaskListPage>;

/**
 * Per task name, nearest-rank percentiles in milliseconds (null: no sample) of runtime and of queue
 * wait: published (or due, for an ETA/countdown) → first started, never below the worker-clock
 * received → started and clamped at 0 against clock skew (shared/queue-wait.ts). Optional: a
 * server from before they existed omits them.
 */
export const RunPercentiles = z.object({
  runtime_p99_ms: z.number().nullable().optional(),
  queue_wait_p50_ms: z.number().nullable().optional(),
  queue_wait_p95_ms: z.number().nullable().optional(),
  queue_wait_p99_ms: z.number().nullable().optional(),
});

export const RegistryEntry = z.object({
  name: z.string(),
  status: z.enum(["ACTIVE", "NEVER_RUN", "NOT_REGISTERED"]),
  runs: z.number().int(),
  failures: z.number().int(),
  failure_rate: z.number(),
  runtime_p50_ms: z.number().nullable(),
  runtime_p95_ms: z.number().nullable(),
  last_run_at: Ts,
  registered_by: z.array(z.string()),
  module: z.string().nullable(),
  signature: z.string().nullable(),
  doc: z.string().nullable(),
  /** Open anomalies of tasks with this name. */
  open_anomalies: z.number().int(),
  ...RunPercentiles.shape,
});
export type RegistryEntry = z.infer<typeof RegistryEntry>;
export const Registry = z.object({ tasks: z.array(RegistryEntry) });
export type Registry = z.infer<typeof Registry>;

export const WorkerStatus = z.enum(["ONLINE", "OFFLINE", "LOST"]);
export type WorkerStatus = z.infer<typeof WorkerStatus>;
export const WorkerInfo = z.object({
  hostname: z.string(),
  status: WorkerStatus,
  pid: z.number().int().nullable(),
  pool: z.string().nullable(),
  concurrency: z.number().int().nullable(),
  queues: z.array(z.string()),
  sw_ver: z.string().nullable(),
  first_seen: z.number(),
  last_seen: z.number(),
  heartbeat_interval_s: z.number().nullable(),
  sessions: z.number().int(),
  active: z.array(z.string()),
  registered: z.array(RegisteredTask),
  /** Events the producer processes on this worker reported lost (their buffers overflowed, etc.). */
  dropped: z.number().int().nonnegative().optional(),
});
export type WorkerInfo = z.infer<typeof WorkerInfo>;
export const WorkerList = z.object({ workers: z.array(WorkerInfo) });
export type WorkerList = z.infer<typeof WorkerList>;

export const AnomalyKind = z.enum([
  "unregistered",
  "stuck_pending",
  "stuck_received",
  "stuck_started",
  "interrupted",
  "lost",
  "chord_never_fired",
  "chain_stopped",
]);
export type AnomalyKind = z.infer<typeof AnomalyKind>;
export const Anomaly = z.object({
  id: z.string(),
  kind: AnomalyKind,
  trace_id: z.string(),
  task_id: z.string(),
  task_name: z.string().nullable(),
  since: z.number(),
  detected_at: z.number(),
  resolved_at: Ts,
  explanation: z.string(),
  fix: z.string(),
});
export type Anomaly = z.infer<typeof Anomaly>;
export const AnomalyList = z.object({ anomalies: z.array(Anomaly) });
export type AnomalyList = z.infer<typeof AnomalyList>;

export const ThroughputBucket = z.object({
  start: z.number(),
  finished: z.number().int(),
  failed: z.number().int(),
});
export type ThroughputBucket = z.infer<typeof ThroughputBucket>;
export const NameStat = z.object({
  name: z.string(),
  runs: z.number().int(),
  failures: z.number().int(),
  runtime_p95_ms: z.number().nullable(),
  runtime_p50_ms: z.number().nullable().optional(),
  ...RunPercentiles.shape,
});
export type NameStat = z.infer<typeof NameStat>;

export const Stats = z.object({
  traces: z.number().int(),
  tasks: z.number().int(),
  open_anomalies: z.number().int(),
  anomalies_by_kind: z.record(z.string(), z.number().int()),
  workers: z.object({ online: z.number().int(), offline: z.number().int(), lost: z.number().int() }),
  last_hour: z.object({ finished: z.number().int(), failed: z.number().int() }),
  last_day: z.object({ finished: z.number().int(), failed: z.number().int() }),
  /** Finished and failed per bucket, oldest first: 12 × 5 min (last hour) and 24 × 1 h (last day). */
  throughput: z.object({ hour: z.array(ThroughputBucket), day: z.array(ThroughputBucket) }),
  /** Over the last 24 h: the names that ran most, and the slowest by p95 runtime (each with all the percentiles). */
  busiest_names: z.array(NameStat),
  slowest_names: z.array(NameStat),
  /** Over the last 24 h: the names that waited longest for a worker, by p95 queue wait. */
  longest_queue_wait_names: z.array(NameStat).optional(),
});
export type Stats = z.infer<typeof Stats>;

/** Events producers reported lost (the batch envelope's `producer`), in all and per host. */
export const ProducerDrops = z.object({
  total: z.number().int().nonnegative(),
  by_host: z.array(
    z.object({
      /** The worker's node name; null for clients (publishers outside a worker). */
      host: z.string().nullable(),
      dropped: z.number().int().nonnegative(),
      processes: z.number().int().nonnegative(),
      by_reason: z.record(z.string(), z.number().int().nonnegative()),
    }),
  ),
});
export type ProducerDrops = z.infer<typeof ProducerDrops>;

/** `/api/health` → `otlp` (present when OTLP_ENDPOINT is set): every shard's exports added up. */
export const OtlpHealth = z.object({
  /** Origin and path of OTLP_ENDPOINT (no query string or credentials); null when it is unusable. */
  endpoint: z.string().nullable(),
  /** Why the settings are unusable (the export is then off), or null. */
  error: z.string().nullable(),
  exported_traces: z.number().int(),
  exported_spans: z.number().int(),
  /** POSTs that failed (each retried one counts). */
  failed_requests: z.number().int(),
  /** Traces given up on after OTLP_MAX_ATTEMPTS (or a 4xx answer other than 408/429). */
  given_up: z.number().int(),
  last_error: z.string().nullable(),
  last_error_at: z.number().nullable(),
});
export type OtlpHealth = z.infer<typeof OtlpHealth>;

export const Health = z.object({
  ok: z.boolean(),
  version: z.string(),
  auth_mode: z.string(),
  index_backend: z.enum(["durable-object", "upstash"]),
  /** Upstash: Redis did not answer the health check (the shards keep reports and retry them). */
  index_degraded: z.boolean().optional(),
  index_degraded_reason: z.string().optional(),
  producer_drops: ProducerDrops.optional(),
  /** OpenTelemetry export (docs/otlp.md): present when OTLP_ENDPOINT is set. */
  otlp: OtlpHealth.optional(),
});
export type Health = z.infer<typeof Health>;

export const ApiError = z.object({
  error: z.object({ code: z.string(), message: z.string(), issues: z.array(z.unknown()).optional() }),
});
export type ApiError = z.infer<typeof ApiError>;

/** Frames on `/api/traces/:traceId/live`. A client that sees a `seq` gap refetches the snapshot. */
export const TraceLiveMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), trace_id: z.string(), seq: z.number().int() }),
  z.object({
    type: z.literal("delta"),
    trace_id: z.string(),
    seq: z.number().int(),
    /**
     * Nodes whose state or timing changed in this ingest, and every node whose state only the whole
     * graph knows (placeholders, NOT_RUN), computed by the same shared/graph code as the snapshot.
     */
    nodes: z.array(GraphNode),
    /** Every GROUP/CHORD with its state now (absent for traces too large to rebuild per delta). */
    containers: z.array(GraphContainer).optional(),
    /** True when nodes, containers or edges were added: patching is not enough, refetch. */
    structure_changed: z.boolean(),
    summary: TraceSummary,
  }),
]);
export type TraceLiveMessage = z.infer<typeof TraceLiveMessage>;

/** Frames on `/api/live`: trace list, fleet and anomaly changes. */
export const GlobalLiveMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), seq: z.number().int() }),
  z.object({ type: z.literal("trace"), seq: z.number().int(), summary: TraceSummary }),
  z.object({ type: z.literal("worker"), seq: z.number().int(), worker: WorkerInfo }),
  z.object({ type: z.literal("anomaly"), seq: z.number().int(), anomaly: Anomaly }),
]);
export type GlobalLiveMessage = z.infer<typeof GlobalLiveMessage>;

/*
 * Run diff (`GET /api/traces/:id/diff`, shared/diff.ts): a trace compared with another run of the
 * same root task name, or with the per-step median of its recent runs.
 */

/** A number then (the other run, or the median) and now (this run); delta = now − then, ratio = now / then. */
export const DiffMeasure = z.object({
  then: z.number().nullable(),
  now: z.number().nullable(),
  /** Null unless both are known. */
  delta_ms: z.number().nullable(),
  /** Null unless both are known and `then` is above 0. */
  ratio: z.number().nullable(),
});
export type DiffMeasure = z.infer<typeof DiffMeasure>;

export const StepDiff = z.object({
  /** The step's position in the canvas, the same in every run (shared/diff.ts `stepKeys`). */
  key: z.string(),
  name: z.string().nullable(),
  /** This run's task (null for a step missing from it). */
  task_id: z.string().nullable(),
  /** The other run's task (null when compared with a median, or for an added step). */
  other_task_id: z.string().nullable(),
  state_then: TaskState.nullable(),
  state_now: TaskState.nullable(),
  runtime: DiffMeasure,
  queue_wait: DiffMeasure,
  retries: z.object({ then: z.number().nullable(), now: z.number().nullable() }),
  newly_failed: z.boolean(),
  newly_retried: z.boolean(),
  newly_not_run: z.boolean(),
  /** Only in this run. */
  added: z.boolean(),
  /** Only in the other run (or in most of the median's runs). */
  missing: z.boolean(),
  /** |runtime delta| + |queue wait delta| in ms (for an added or missing step: its own runtime + wait). */
  impact_ms: z.number(),
  /** With a median: how many of the compared runs had this step. */
  runs: z.number().int().optional(),
});
export type StepDiff = z.infer<typeof StepDiff>;

export const DiffAgainst = z.object({
  mode: z.enum(["trace", "previous", "median"]),
  /** The compared traces, newest first (one unless `median`). */
  trace_ids: z.array(z.string()),
  /** When the compared run(s) started: the earliest and the latest. */
  started_from: z.number().nullable(),
  started_to: z.number().nullable(),
});
export type DiffAgainst = z.infer<typeof DiffAgainst>;

export const TraceDiff = z.object({
  trace_id: z.string(),
  root_name: z.string(),
  started_at: z.number().nullable(),
  against: DiffAgainst,
  /** Whole-trace duration then (or its median) and now. */
  duration: DiffMeasure,
  steps: z.array(StepDiff),
  summary: z.object({
    steps: z.number().int(),
    changed: z.number().int(),
    newly_failed: z.number().int(),
    newly_retried: z.number().int(),
    newly_not_run: z.number().int(),
    added: z.number().int(),
    missing: z.number().int(),
    /** The steps that changed most: flagged ones first, then by impact_ms (at most 10). */
    biggest: z.array(StepDiff),
  }),
  /** Set when a compared snapshot was truncated (a very large trace): steps past it are not compared. */
  truncated: z.boolean().optional(),
});
export type TraceDiff = z.infer<typeof TraceDiff>;

/** One call of `POST /api/index/rebuild`: how far the rebuild got (worker/index-rebuild.ts). */
export const IndexRebuildPage = z.object({
  done: z.boolean(),
  /** Pass it back as `?cursor=` for the next call; null when done. */
  cursor: z.string().nullable(),
  /** Traces and task lookup rows sent to the index by this call. */
  traces: z.number().int().nonnegative(),
  tasks: z.number().int().nonnegative(),
  /** The shard the next call starts at, of how many. */
  shard: z.number().int().nonnegative(),
  shards: z.number().int().nonnegative(),
});
export type IndexRebuildPage = z.infer<typeof IndexRebuildPage>;
