/**
 * What a layout produces and what the node components draw: React Flow nodes and edges with their
 * data, and the layout's result. Types only; shared by every graph module.
 */
import type { Edge, Node } from "@xyflow/react";
import type { ElkNode } from "elkjs/lib/elk-api.js";
import type { EdgeKind, GraphContainer, GraphNode } from "../../../shared/api";

export interface ElkLike {
  layout(graph: ElkNode): Promise<ElkNode>;
}

/**
 * Which sides carry edges. Handles are drawn only there: each handle subscribes to the React Flow
 * store, and thousands of idle ones (members of bundled groups) made every store update slow.
 */
export type Ports = { in: boolean; out: boolean };
export type TaskNodeData = { kind: "task"; task: GraphNode; ports: Ports };
/** A grid cell of a container drawn by the container itself (not a React Flow node). */
export type Cell = { id: string; x: number; y: number; more: boolean };
/**
 * `cells` set: the container draws its members itself as plain DOM (`tasks` holds them, in cell
 * order): React Flow then handles one node per group instead of one per member, which is what
 * kept 2,000-task traces slow. Unset: members are child React Flow nodes (containers with edges
 * between members, laid out by elk).
 */
export type ContainerNodeData = {
  kind: "container";
  container: GraphContainer;
  hidden: number;
  counts: StateCount[];
  ports: Ports;
  cells?: Cell[];
  tasks?: (GraphNode | null)[];
};
export type MoreNodeData = {
  kind: "more";
  foldKey: string;
  hidden: number;
  what: "members" | "children";
  ports: Ports;
};
/** Collapsed groups drawn as one box of summaries (`cells[i]` is where `groups[i]` is drawn). */
export type ShelfGroup = { container: GraphContainer; counts: StateCount[] };
export type ShelfNodeData = {
  kind: "shelf";
  foldKey: string;
  groups: ShelfGroup[];
  tasks: number;
  counts: StateCount[];
  ports: Ports;
  cells: Cell[];
};
export type FlowNodeData = TaskNodeData | ContainerNodeData | MoreNodeData | ShelfNodeData;
export type FlowNode = Node<FlowNodeData>;
/**
 * `bus`: the edge is one of a fan-out drawn as a comb (see `withBuses`): "down"/"up" draw the
 * trunk from the source to the farthest target below/above, "branch" only the tooth into its
 * target.
 */
export type FlowEdgeData = { kind: EdgeKind; count: number; bus?: "up" | "down" | "branch" };
export type FlowEdge = Edge<FlowEdgeData>;
export type StateCount = [GraphNode["state"], number];

export interface Layout {
  nodes: FlowNode[];
  edges: FlowEdge[];
  /** Where the trace starts (root task or its box): the first view centres here on big graphs. */
  rootId: string | null;
  engine: "elk" | "tree" | "linear";
}
