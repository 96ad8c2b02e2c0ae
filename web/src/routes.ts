/**
 * The route table, read by the entry point (main.tsx: what to start before the application loads)
 * and by the application (app.tsx: which page to render). Pages are named here, not imported: the
 * entry point must stay small, and app.tsx maps every name to its component.
 */
import { prefetch } from "./api/early";
import { decodeSegment, encodeId } from "./format";
import { elkInWorker } from "./graph/elk";

export type PageName =
  "trace" | "task" | "tasks" | "workers" | "registry" | "dashboard" | "traces" | "webhooks";

export interface Route {
  page: PageName;
  /** The window's title on this page (with the id, when the route has one). */
  title: (id: string | null) => string;
  /** Matches the whole path; a capture group, when any, is the page's id (still %-encoded). */
  pattern: RegExp;
  /** Started by the entry point, before the application's code loads, with the decoded id. */
  prefetch?: (id: string) => void;
}

export const ROUTES: readonly Route[] = [
  {
    page: "trace",
    title: (id) => `Trace ${(id ?? "").slice(0, 8)}`,
    pattern: /^\/traces\/([^/]+)$/,
    // The graph waits for elk's worker (which then compiles on another core) and the snapshot.
    prefetch: (id) => {
      void elkInWorker();
      prefetch(`/api/traces/${encodeId(id)}`);
    },
  },
  { page: "task", title: (id) => `Task ${(id ?? "").slice(0, 8)}`, pattern: /^\/tasks\/([^/]+)$/ },
  { page: "tasks", title: () => "Tasks", pattern: /^\/tasks\/?$/ },
  { page: "workers", title: () => "Workers", pattern: /^\/workers$/ },
  { page: "registry", title: () => "Task registry", pattern: /^\/registry$/ },
  { page: "dashboard", title: () => "Dashboard", pattern: /^\/dashboard$/ },
  { page: "webhooks", title: () => "Webhooks", pattern: /^\/webhooks$/ },
  { page: "traces", title: () => "Traces", pattern: /^\/(?:traces)?$/ },
];

export interface RouteMatch {
  route: Route;
  /** The captured path segment as written (pages are keyed by it), or null. */
  segment: string | null;
  /** That segment decoded; never throws (a malformed %-escape or a lone surrogate stays as is). */
  id: string | null;
}

/** The first route whose pattern matches `path`, or null (the "nothing here" page). */
export function matchRoute(path: string): RouteMatch | null {
  for (const route of ROUTES) {
    const m = path.match(route.pattern);
    if (!m) continue;
    const segment = m[1] ?? null;
    return { route, segment, id: segment === null ? null : decodeSegment(segment) };
  }
  return null;
}
