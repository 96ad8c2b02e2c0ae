/**
 * The trace export file (`GET /api/traces/:id/export`, `POST /api/import`): one trace's wire events
 * exactly as stemtrace stored them, plus its graph at export time, so a reproduction can be shared
 * and loaded into any stemtrace (a local `wrangler dev` included). Pure zod, no runtime imports.
 */
import { z } from "zod";
import { TraceSnapshot } from "./api";

export const EXPORT_FORMAT = "stemtrace-trace-export";
export const EXPORT_VERSION = 1;

/**
 * The most event JSON one export carries (UTF-16 code units of the stored JSON, about bytes): the
 * export is built in memory, and an import of it must fit a Worker's 128 MB. A larger trace
 * answers 413 `export_too_large`.
 */
export const MAX_EXPORT_EVENT_BYTES = 16 * 1024 * 1024;
/** The largest import body: the events' cap plus room for the graph. */
export const MAX_IMPORT_BYTES = 32 * 1024 * 1024;

export const TraceExport = z.object({
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(EXPORT_VERSION),
  /** When the file was made (epoch seconds). */
  exported_at: z.number(),
  /** Which stemtrace made it: the host it was read from and that deployment's version. */
  source: z.object({ host: z.string(), version: z.string() }),
  trace_id: z.string().min(1),
  /**
   * The trace's task events as stored (a coalesced event appears as the events ingest expanded it
   * into). Checked one by one on import, by the same validation as `POST /v1/events`, so one bad
   * event is reported by its index and costs only itself.
   */
  events: z.array(z.unknown()),
  /** The graph when exported: for reading the file; an import rebuilds it from the events. */
  graph: TraceSnapshot,
});
export type TraceExport = z.infer<typeof TraceExport>;

/** What an import did, per event of the file (`index` is the position in `events`). */
export const ImportResponse = z.object({
  trace_id: z.string(),
  events: z.number().int().nonnegative(),
  accepted: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  rejected: z.array(z.object({ index: z.number().int().nonnegative(), error: z.string() })),
  /** Valid events not stored because an object failed (the answer is then a 503): import again. */
  failed: z.array(z.object({ index: z.number().int().nonnegative(), error: z.string() })).optional(),
});
export type ImportResponse = z.infer<typeof ImportResponse>;

/** The download's file name: the trace id with anything unusual in a file name replaced. */
export function exportFileName(traceId: string): string {
  return `stemtrace-${traceId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200)}.json`;
}
