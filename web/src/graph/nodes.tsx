/** React Flow node types, memoized and declared at module scope so renders stay cheap. */
import { BaseEdge, Handle, Position, type EdgeProps, type NodeProps } from "@xyflow/react";
import { createContext, memo, useContext, type ComponentType, type ReactNode } from "react";
import type { GraphNode } from "../../../shared/api";
import { Boundary } from "../components/Boundary";
import { CompareContext } from "../components/compare-marks";
import { duration, shortId, shortName, text, time } from "../format";
import { STATE_STYLES } from "../states";
import { BUS_OFFSET } from "./buses";
import { MORE_H, SUMMARY_H, SUMMARY_W, TASK_H, TASK_W } from "./geometry";
import type {
  Cell,
  FlowEdge,
  ContainerNodeData,
  FlowNode,
  MoreNodeData,
  ShelfNodeData,
  StateCount,
  TaskNodeData,
} from "./types";

/** What grid cells inside containers need from the page: the selection and the two actions. */
export interface GraphActions {
  selected: string | null;
  select(taskId: string): void;
  /** Opens a fold; the view then moves to `focusId` (by default, what the fold key names). */
  expand(foldKey: string, focusId?: string): void;
}
export const GraphActionsContext = createContext<GraphActions>({
  selected: null,
  select: () => undefined,
  expand: () => undefined,
});

function runtimeOf(task: TaskNodeData["task"]): number | null {
  if (task.runtime_ms !== null) return task.runtime_ms;
  if (task.started_at !== null && task.finished_at !== null)
    return (task.finished_at - task.started_at) * 1000;
  return null;
}

function whenText(task: GraphNode): string {
  if (task.placeholder) return task.state === "NOT_RUN" ? "not run" : "announced, not sent";
  if (task.started_at !== null)
    return `${time(task.started_at)} · ${task.finished_at === null && task.state === "STARTED" ? "running" : duration(runtimeOf(task))}`;
  if (task.published_at !== null) return `queued ${time(task.published_at)}`;
  return STATE_STYLES[task.state].label;
}

/**
 * The task box: state colour and icon, short name, id prefix, start and duration, retries.
 * Props are primitives or stable callbacks, so a grid of cards re-renders only the cards that
 * changed (a click selects one: two cards re-render, not the whole group).
 */
export const TaskCard = memo(function TaskCard({
  task,
  selected,
  className = "",
  cell,
  onSelect,
  children,
}: {
  task: GraphNode;
  selected: boolean;
  className?: string;
  cell?: Cell;
  onSelect?: (taskId: string) => void;
  children?: ReactNode;
}) {
  const style = STATE_STYLES[task.state];
  // While Compare is on (components/CompareBar.tsx): the step's change since the compared run.
  const mark = useContext(CompareContext).get(task.id);
  return (
    <div
      className={`task-node state-${task.state.toLowerCase()}${task.placeholder ? " placeholder" : ""}${selected ? " selected" : ""}${mark ? ` compare compare-${mark.tone}` : ""} ${className}`}
      style={{
        ["--state" as string]: style.color,
        ...(cell ? { left: cell.x, top: cell.y, width: TASK_W, height: TASK_H } : {}),
      }}
      title={`${task.name ?? "(unknown name)"}\n${task.id}\n${style.label}: ${task.state_reason ?? style.help}${task.anomaly ? `\n⚠ ${task.anomaly}` : ""}${mark ? `\nCompared: ${mark.detail}` : ""}`}
      data-state={task.state}
      data-compare={mark?.tone}
      data-task-id={task.id}
      onClick={onSelect ? () => onSelect(task.id) : undefined}
    >
      {children}
      <div className="task-node-top">
        <span className="state-icon" aria-label={style.label}>
          {style.icon}
        </span>
        <span className="task-name">{shortName(task.name)}</span>
        {task.retries > 0 && (
          <span className="retry-badge" title={`retried ${task.retries}×`}>
            ↻{task.retries}
          </span>
        )}
        {task.anomaly && (
          <span className="anomaly-dot" title={task.anomaly}>
            ⚠
          </span>
        )}
      </div>
      <div className="task-node-bottom">
        <span className="mono">{shortId(task.id)}</span>
        <span className="task-when">{whenText(task)}</span>
      </div>
      {mark && <span className="compare-chip">{mark.label}</span>}
    </div>
  );
});

export const TaskNode = memo(function TaskNode({ data, selected }: NodeProps<FlowNode>) {
  const { task, ports } = data as TaskNodeData;
  return (
    <TaskCard task={task} selected={selected}>
      {ports.in && <Handle type="target" position={Position.Left} isConnectable={false} />}
      {ports.out && <Handle type="source" position={Position.Right} isConnectable={false} />}
    </TaskCard>
  );
});

/** A thin stacked bar of member states: how far a group got, at a glance. */
export function StateBar({ counts, total }: { counts: StateCount[]; total: number }) {
  if (total === 0) return null;
  return (
    <span
      className="state-bar"
      title={counts.map(([s, n]) => `${n} ${STATE_STYLES[s].label.toLowerCase()}`).join(" · ")}
    >
      {counts.map(([s, n]) => (
        <span key={s} style={{ width: `${(n / total) * 100}%`, background: STATE_STYLES[s].color }} />
      ))}
    </span>
  );
}

export const ContainerNode = memo(function ContainerNode({ data }: NodeProps<FlowNode>) {
  const { container, hidden, counts, ports, cells, tasks } = data as ContainerNodeData;
  const actions = useContext(GraphActionsContext);
  const style = STATE_STYLES[container.state];
  const total = container.members.length;
  const size =
    container.size !== null && container.size !== total ? `${total}/${container.size}` : String(total);
  return (
    <div
      title={`${container.kind} ${container.id}\n${style.label}${hidden ? `\n${hidden} members folded` : ""}`}
      className={`container-node kind-${container.kind.toLowerCase()}`}
      style={{ ["--state" as string]: style.color }}
      data-container-id={container.id}
      data-kind={container.kind}
      data-state={container.state}
    >
      {ports.in && <Handle type="target" position={Position.Left} isConnectable={false} />}
      <div className="container-title">
        <span className="container-kind">{container.kind}</span>
        <span className="container-state">
          {style.icon} {style.label}
        </span>
        <span className="muted">{size} tasks</span>
        <StateBar counts={counts} total={total} />
      </div>
      {cells?.map((cell, i) => {
        const at = { left: cell.x, top: cell.y, width: TASK_W };
        const task = tasks?.[i];
        if (cell.more || !task)
          return (
            <div
              key={cell.id}
              className="more-node cell"
              style={{ ...at, height: MORE_H }}
              data-more={hidden}
              title="Click to show every member"
              onClick={() => actions.expand(container.id)}
            >
              <span>… {hidden.toLocaleString()} more</span>
              <span className="more-hint">expand</span>
            </div>
          );
        return (
          <TaskCard
            key={cell.id}
            task={task}
            selected={actions.selected === task.id}
            className="cell"
            cell={cell}
            onSelect={actions.select}
          />
        );
      })}
      {ports.out && <Handle type="source" position={Position.Right} isConnectable={false} />}
    </div>
  );
});

export const MoreNode = memo(function MoreNode({ data }: NodeProps<FlowNode>) {
  const { hidden, what, ports } = data as MoreNodeData;
  return (
    <div className="more-node" title="Click to show all of them" data-more={hidden}>
      {ports.in && <Handle type="target" position={Position.Left} isConnectable={false} />}
      <span>
        … {hidden.toLocaleString()} more {what === "children" ? "children" : ""}
      </span>
      <span className="more-hint">expand</span>
      {ports.out && <Handle type="source" position={Position.Right} isConnectable={false} />}
    </div>
  );
});

/**
 * Groups collapsed past the card budget that are entered the same way (e.g. 60 groups spawned by
 * one task): one box of summaries, each with its state, size and state bar; a click opens that
 * group (it is then drawn in full, beside the shelf), "open all" opens every one.
 */
export const ShelfNode = memo(function ShelfNode({ data }: NodeProps<FlowNode>) {
  const { foldKey, groups, tasks, counts, ports, cells } = data as ShelfNodeData;
  const actions = useContext(GraphActionsContext);
  return (
    <div
      className="shelf-node"
      data-shelf={groups.length}
      title={`${groups.length} groups not drawn, to keep this large trace fast: click one to open it`}
    >
      {ports.in && <Handle type="target" position={Position.Left} isConnectable={false} />}
      <div className="container-title">
        <span className="container-kind">{groups.length.toLocaleString()} more groups</span>
        <span className="muted">{tasks.toLocaleString()} tasks · click one to draw it</span>
        <StateBar counts={counts} total={tasks} />
        <button
          className="link-button shelf-open-all"
          onClick={() => actions.expand(foldKey, groups[0]?.container.id)}
        >
          open all
        </button>
      </div>
      {cells.map((cell, i) => {
        const g = groups[i];
        if (!g) return null;
        const { container } = g;
        const style = STATE_STYLES[container.state];
        const total = container.members.length;
        const failed = g.counts.find(([s]) => s === "FAILURE")?.[1] ?? 0;
        return (
          <div
            key={cell.id}
            className={`group-summary cell kind-${container.kind.toLowerCase()}`}
            style={{
              left: cell.x,
              top: cell.y,
              width: SUMMARY_W,
              height: SUMMARY_H,
              ["--state" as string]: style.color,
            }}
            data-summary-id={container.id}
            data-state={container.state}
            title={`${container.kind} ${container.id}\n${style.label}: ${total} tasks\nClick to draw its tasks`}
            onClick={() => actions.expand(container.id)}
          >
            <div className="group-summary-top">
              <span className="state-icon">{style.icon}</span>
              <span className="container-kind">{container.kind}</span>
              <span>{total.toLocaleString()} tasks</span>
              {failed > 0 && <span className="bad">{failed} failed</span>}
            </div>
            <StateBar counts={g.counts} total={total} />
          </div>
        );
      })}
      {ports.out && <Handle type="source" position={Position.Right} isConnectable={false} />}
    </div>
  );
});

/** Each graph box behind its own boundary: one task with a bad value shows a message in its box, not an empty canvas. */
function guarded(region: string, Inner: ComponentType<NodeProps<FlowNode>>) {
  return memo(function Guarded(props: NodeProps<FlowNode>) {
    return (
      <Boundary region={`${region} ${text(props.id)}`}>
        <Inner {...props} />
      </Boundary>
    );
  });
}

export const nodeTypes = {
  task: guarded("task", TaskNode),
  container: guarded("group", ContainerNode),
  more: guarded("fold", MoreNode),
  shelf: guarded("shelf", ShelfNode),
};

const R = 8;

/** One edge of a fan-out drawn as a comb (buses.ts `withBuses`): the trunk, or a tooth. */
export const BusEdge = memo(function BusEdge({
  id,
  sourceX,
  sourceY,
  targetX,
  targetY,
  data,
}: EdgeProps<FlowEdge>) {
  const x = sourceX + BUS_OFFSET;
  const dy = targetY - sourceY;
  const r = Math.min(R, Math.abs(dy) / 2);
  const turn = dy >= 0 ? r : -r;
  const tooth = `Q${x},${targetY} ${x + r},${targetY} L${targetX},${targetY}`;
  const path =
    data?.bus === "branch"
      ? `M${x},${targetY - turn} ${tooth}`
      : `M${sourceX},${sourceY} L${x - r},${sourceY} Q${x},${sourceY} ${x},${sourceY + turn} L${x},${targetY - turn} ${tooth}`;
  return <BaseEdge id={id} path={path} interactionWidth={0} />;
});

export const edgeTypes = { bus: BusEdge };
