/**
 * The side panel's task detail while the trace page replays a moment (`?at=`): the task as it was
 * then (`GET /api/tasks/:taskId?at=`), said plainly, with a way to see it as it is now.
 */
import { useQuery } from "@tanstack/react-query";
import { ApiError, taskAtQuery } from "../api/client";
import { encodeId, isoTime, shortId, time } from "../format";
import { Link } from "../router";
import { TaskDetailBody } from "./TaskDetailView";
import "./replay.css";

function AsOf({ taskId, at }: { taskId: string; at: number }) {
  return (
    <p className="replay-as-of" data-replay-as-of={at}>
      As of <b title={isoTime(at)}>{time(at)}</b> (replay) ·{" "}
      <Link to={`/tasks/${encodeId(taskId)}`}>see it now</Link>
    </p>
  );
}

export function TaskDetailAtLoader({ taskId, at }: { taskId: string; at: number }) {
  const q = useQuery(taskAtQuery(taskId, at));
  if (q.isPending)
    return (
      <div className="loading">
        Loading task {shortId(taskId)} as of {time(at)}…
      </div>
    );
  if (q.isError)
    return (
      <div className="error-box" data-task-error>
        <AsOf taskId={taskId} at={at} />
        <h3>
          Task {shortId(taskId)}{" "}
          {q.error instanceof ApiError && q.error.status === 404 ? "did not exist yet" : "is not available"}
        </h3>
        <p>{q.error.message}</p>
        {!(q.error instanceof ApiError && q.error.status === 404) && (
          <p>
            <button onClick={() => void q.refetch()}>Try again</button>
          </p>
        )}
      </div>
    );
  // While the next moment loads, the previous one stays on screen, labelled with its own moment.
  return (
    <>
      <AsOf taskId={taskId} at={q.data.as_of} />
      <TaskDetailBody detail={q.data} />
    </>
  );
}
