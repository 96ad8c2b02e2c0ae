/**
 * The text predicates of the index's queries, defined once so both index backends answer alike:
 * the Durable Object index says them in SQL (LIKE with `likePattern`, wildcards escaped), the
 * Upstash index applies these functions to what it reads. They follow SQLite's LIKE: case folds
 * ASCII letters only, a name filter is a substring of the names joined as "|a|b|".
 */

/** SQLite's LIKE folds only A–Z. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** A LIKE pattern taking `text` literally (used with `ESCAPE '\'`): `%` and `_` are not wildcards. */
export function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => "\\" + c);
}

/** The names of a trace as the DO index stores them: "|a|b|" (a worker filter matches "|host|"). */
export function joinedNames(names: readonly string[]): string {
  return "|" + names.join("|") + "|";
}

/** `name` filter of the trace list: a case-insensitive substring of the joined names. */
export function namesContain(names: readonly string[], needle: string): boolean {
  return asciiLower(joinedNames(names)).includes(asciiLower(needle));
}

/** An id starts with `prefix`, case-insensitively (LIKE 'prefix%'). */
export function idHasPrefix(id: string, prefix: string): boolean {
  return asciiLower(id).startsWith(asciiLower(prefix));
}

/** A name (null never matches) contains `needle`, case-insensitively (LIKE '%needle%'). */
export function nameContains(name: string | null, needle: string): boolean {
  return name !== null && asciiLower(name).includes(asciiLower(needle));
}

/** `q` of the trace list: a trace id prefix or a substring of its task names. */
export function traceMatchesQ(
  summary: { trace_id: string; task_names: readonly string[] },
  q: string,
): boolean {
  return idHasPrefix(summary.trace_id, q) || namesContain(summary.task_names, q);
}

/** Task search: an id prefix or a name substring. */
export function taskMatchesSearch(taskId: string, name: string | null, q: string): boolean {
  return idHasPrefix(taskId, q) || nameContains(name, q);
}

/** The order of search hits: last updated first, then task id (descending, as SQLite compares text). */
export function byUpdatedDesc(
  a: { updated_at: number; task_id: string },
  b: { updated_at: number; task_id: string },
): number {
  return b.updated_at - a.updated_at || (a.task_id < b.task_id ? 1 : a.task_id > b.task_id ? -1 : 0);
}
