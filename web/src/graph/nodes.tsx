/** React Flow node types, memoized and declared at module scope so renders stay cheap. */
import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { duration, shortId, shortName, time } from "../format";
import { STATE_STYLES } from "../states";
import type { ContainerNodeData, FlowNode, MoreNodeData, TaskNodeData } from "./layout";

export const TaskNode = memo(function TaskNode({ data, selected }: NodeProps<FlowNode>) {
  const { task } = data as TaskNodeData;
  const style = STATE_STYLES[task.state];
  const runtime = task.runtime_ms ?? (task.started_at && task.finished_at ? (task.finished_at - task.started_at) * 1000 : null);
  return (
    <div
      className={`task-node${task.placeholder ? " placeholder" : ""}${selected ? " selected" : ""}`}
      style={{ ["--state" as string]: style.color }}
      title={`${task.name ?? ""}\n${task.id}\n${style.label}: ${task.state_reason ?? style.help}`}
      data-state={task.state}
      data-task-id={task.id}
    >
      <Handle type="target" position={Position.Left} />
      <div className="task-node-top">
        <span className="state-icon" aria-label={style.label}>{style.icon}</span>
        <span className="task-name">{shortName(task.name)}</span>
        {task.retries > 0 && <span className="retry-badge" title={`${task.retries} retries`}>↻{task.retries}</span>}
        {task.anomaly && <span className="anomaly-badge" title={task.anomaly}>!</span>}
      </div>
      <div className="task-node-bottom">
        <span className="mono">{shortId(task.id)}</span>
        <span>{task.placeholder ? (task.state === "NOT_RUN" ? "not run" : "waiting") : task.started_at ? `${time(task.started_at)} · ${duration(runtime)}` : style.label}</span>
      </div>
      <Handle type="source" position={Position.Right} />
    </div>
  );
});

export const ContainerNode = memo(function ContainerNode({ data }: NodeProps<FlowNode>) {
  const { container, hidden } = data as ContainerNodeData;
  const style = STATE_STYLES[container.state];
  return (
    <div title={`${container.kind} ${container.id}: ${style.label}`} className={`container-node kind-${container.kind.toLowerCase()}`} style={{ ["--state" as string]: style.color }} data-container-id={container.id} data-kind={container.kind}>
      <Handle type="target" position={Position.Left} />
      <div className="container-title">
        <span className="container-kind">{container.kind}</span>
        <span className="state-icon" title={style.label}>{style.icon}</span>
        <span className="muted mono">{shortId(container.id)}</span>
        <span className="muted">· {container.members.length}{container.size && container.size !== container.members.length ? `/${container.size}` : ""} tasks{hidden ? ` (${hidden} folded)` : ""}</span>
      </div>
      <Handle type="source" position={Position.Right} />
    </div>
  );
});

export const MoreNode = memo(function MoreNode({ data }: NodeProps<FlowNode>) {
  const { hidden } = data as MoreNodeData;
  return (
    <div className="more-node" title="Click to show every member">
      <Handle type="target" position={Position.Left} />… {hidden} more (click to expand)
      <Handle type="source" position={Position.Right} />
    </div>
  );
});

export const nodeTypes = { task: TaskNode, container: ContainerNode, more: MoreNode };
