import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiError } from "../shared/api";
import { IndexUnavailable } from "../durable-objects/upstash-index";

/** An error meant for the client: its message says what to do about it. */
export class HttpError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly issues?: unknown[],
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string, issues?: unknown[]): ApiError {
  return { error: issues ? { code, message, issues } : { code, message } };
}

/** The one error handler: client errors as they are, anything else logged and answered as 500. */
export function handleError(err: Error, c: Context): Response {
  if (err instanceof HttpError) return c.json(errorBody(err.code, err.message, err.issues), err.status);
  // The Upstash index is unreachable: trace pages still answer, the list comes back with Redis.
  if (err instanceof IndexUnavailable)
    return c.json(errorBody("index_unavailable", `${err.message}; retry shortly`), 503);
  console.error(
    JSON.stringify({
      msg: "unhandled error",
      path: c.req.path,
      method: c.req.method,
      error: String(err),
      stack: err.stack,
    }),
  );
  return c.json(errorBody("internal", "stemtrace hit an internal error; it has been logged"), 500);
}
