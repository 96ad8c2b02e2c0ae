/**
 * The trace list's page cursor: (sort key, trace id) of the last row, opaque to clients. Shared by
 * the index that makes it and the Worker that checks a client's cursor before asking the index.
 */

export function encodeCursor(sortAt: number, traceId: string): string {
  // btoa takes Latin-1 only: other characters of the id go as JSON \u escapes (any trace id pages).
  const json = JSON.stringify([sortAt, traceId]).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return btoa(json);
}

export function decodeCursor(cursor: string): [number, string] | null {
  try {
    const value: unknown = JSON.parse(atob(cursor));
    if (Array.isArray(value) && typeof value[0] === "number" && typeof value[1] === "string")
      return [value[0], value[1]];
  } catch {
    // fall through: a malformed cursor is reported by the caller
  }
  return null;
}
