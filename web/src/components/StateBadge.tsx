import type { TaskState } from "../../../shared/api";
import { STATE_STYLES } from "../states";

export function StateBadge({ state, reason }: { state: TaskState; reason?: string | null }) {
  const s = STATE_STYLES[state];
  return (
    <span className="state-badge" style={{ ["--state" as string]: s.color }} title={reason ?? s.help} data-state={state}>
      <span aria-hidden>{s.icon}</span> {s.label}
    </span>
  );
}
