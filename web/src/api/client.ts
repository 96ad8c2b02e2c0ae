/**
 * Fetchers for the read API, each validated with the shared zod schema, and their React Query
 * `queryOptions` factories. React Query owns server state; sockets only patch or invalidate it.
 */
import { queryOptions } from "@tanstack/react-query";
import type { z } from "zod";
import {
  AnomalyList,
  Health,
  Registry,
  Stats,
  TaskDetail,
  TaskSearch,
  TaskListPage,
  type TaskSort,
  TraceList,
  TraceSnapshot,
  WorkerList,
} from "../../../shared/api";
import { ReplaySnapshot, ReplayTaskDetail } from "../../../shared/replay";
import { encodeId } from "../format";
import { JSON_HEADERS, takePrefetched } from "./early";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function fetchJson<T extends z.ZodType>(path: string, schema: T): Promise<z.infer<T>> {
  const res = await (takePrefetched(path) ?? fetch(path, { headers: JSON_HEADERS }));
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const message =
      typeof body === "object" && body !== null && "error" in body
        ? String((body as { error: { message?: unknown } }).error.message ?? res.statusText)
        : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success)
    throw new ApiError(
      500,
      `the server answered ${path} in an unexpected shape: ${parsed.error.issues[0]?.message ?? ""}`,
    );
  return parsed.data;
}

export interface TraceFilters {
  state?: string;
  name?: string;
  q?: string;
  from?: number;
  to?: number;
  cursor?: string;
}

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") search.set(k, String(v));
  const s = search.toString();
  return s ? `?${s}` : "";
}

/** The task list's filters and order (GET /api/tasks without q). */
export interface TaskListFilters {
  sort?: TaskSort;
  state?: string;
  name?: string;
  worker?: string;
  queue?: string;
  from?: number;
  cursor?: string;
}

export const taskListQuery = (f: TaskListFilters) =>
  queryOptions({
    queryKey: ["tasks", f] as const,
    queryFn: () => fetchJson(`/api/tasks${query({ ...f, limit: 50 })}`, TaskListPage),
    placeholderData: (previous) => previous,
    refetchInterval: 5000,
    retry: false,
  });

export const keys = {
  traces: (f: TraceFilters) => ["traces", f] as const,
  trace: (id: string) => ["trace", id] as const,
  task: (id: string) => ["task", id] as const,
};

export const tracesQuery = (f: TraceFilters) =>
  queryOptions({
    queryKey: keys.traces(f),
    queryFn: () => fetchJson(`/api/traces${query({ ...f, limit: 50 })}`, TraceList),
    placeholderData: (previous) => previous,
  });

export const traceQuery = (id: string) =>
  queryOptions({
    queryKey: keys.trace(id),
    queryFn: () => fetchJson(`/api/traces/${encodeId(id)}`, TraceSnapshot),
  });

/**
 * The trace as it was at a moment (replay, shared/replay.ts). Its own key root, so live deltas
 * (which patch and invalidate `keys.trace`) never touch a replayed view; the previous moment stays
 * on screen while the next one loads.
 */
export const traceAtQuery = (id: string, at: number) =>
  queryOptions({
    queryKey: ["trace-at", id, at] as const,
    queryFn: () => fetchJson(`/api/traces/${encodeId(id)}?at=${encodeURIComponent(at)}`, ReplaySnapshot),
    placeholderData: (previous) => previous,
    staleTime: 30_000,
  });

/** A task as it was at a moment (replay): its own key root, like `traceAtQuery`; no retry of a 404. */
export const taskAtQuery = (id: string, at: number) =>
  queryOptions({
    queryKey: ["task-at", id, at] as const,
    queryFn: () => fetchJson(`/api/tasks/${encodeId(id)}?at=${encodeURIComponent(at)}`, ReplayTaskDetail),
    placeholderData: (previous) => previous,
    staleTime: 30_000,
    retry: (failures, error) => !(error instanceof ApiError && error.status === 404) && failures < 2,
  });

export const taskQuery = (id: string) =>
  queryOptions({
    queryKey: keys.task(id),
    queryFn: () => fetchJson(`/api/tasks/${encodeId(id)}`, TaskDetail),
  });

export const taskSearchQuery = (q: string) =>
  queryOptions({
    queryKey: ["task-search", q],
    queryFn: () => fetchJson(`/api/tasks${query({ q })}`, TaskSearch),
    enabled: q.length > 0,
  });

export const workersQuery = () =>
  queryOptions({
    queryKey: ["workers"],
    queryFn: () => fetchJson("/api/workers", WorkerList),
    refetchInterval: 5000,
  });
export const registryQuery = () =>
  queryOptions({ queryKey: ["registry"], queryFn: () => fetchJson("/api/registry", Registry) });
export const statsQuery = () =>
  queryOptions({
    queryKey: ["stats"],
    queryFn: () => fetchJson("/api/stats", Stats),
    refetchInterval: 10_000,
  });
export const anomaliesQuery = () =>
  queryOptions({
    queryKey: ["anomalies"],
    queryFn: () => fetchJson("/api/anomalies", AnomalyList),
    retry: false,
    refetchInterval: 10_000,
  });
export const traceAnomaliesQuery = (traceId: string) =>
  queryOptions({
    queryKey: ["anomalies", "trace", traceId],
    queryFn: () => fetchJson(`/api/traces/${encodeId(traceId)}/anomalies`, AnomalyList),
  });
export const healthQuery = () =>
  queryOptions({ queryKey: ["health"], queryFn: () => fetchJson("/api/health", Health), staleTime: 60_000 });
