/**
 * Requests started by the entry point before the application is loaded. fetchJson takes a
 * started request for its path once; every later fetch of that path is a normal one, so React
 * Query still owns the data (this only moves the first request earlier).
 */
const started = new Map<string, Promise<Response>>();

export const JSON_HEADERS = { Accept: "application/json" };

export function prefetch(path: string): void {
  started.set(path, fetch(path, { headers: JSON_HEADERS }));
}

export function takePrefetched(path: string): Promise<Response> | undefined {
  const res = started.get(path);
  started.delete(path);
  return res;
}
