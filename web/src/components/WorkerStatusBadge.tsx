import type { WorkerStatus } from "../../../shared/api";
import { WORKER_STATUS_COLORS } from "../states";

/** A worker's status ("online", "offline", "lost") as a badge in its state colour. */
export function WorkerStatusBadge({ status }: { status: WorkerStatus }) {
  return (
    <span className="state-badge" style={{ ["--state" as string]: WORKER_STATUS_COLORS[status] }}>
      {status.toLowerCase()}
    </span>
  );
}
