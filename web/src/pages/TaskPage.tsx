/** One task on its own page (/tasks/:id): its detail, full width. */
import { TaskDetailLoader } from "../components/TaskDetailView";

export function TaskPage({ taskId }: { taskId: string }) {
  return (
    <div className="page narrow">
      <TaskDetailLoader taskId={taskId} />
    </div>
  );
}
