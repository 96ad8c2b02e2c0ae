import type { TaskState } from "../../../shared/api";
import { STATE_STYLES } from "../states";

export function StateBadge({ state, reason }: { state: TaskState; reason?: string | null }) {
  // A state this UI does not know (a newer server) still gets a badge.
  const s = STATE_STYLES[state] ?? {
    color: "var(--st-pending)",
    icon: "?",
    label: String(state),
    help: "a state this version of the UI does not know",
  };
  return (
    <span
      className="state-badge"
      style={{ ["--state" as string]: s.color }}
      title={reason ?? s.help}
      data-state={state}
    >
      <span aria-hidden>{s.icon}</span> {s.label}
    </span>
  );
}
