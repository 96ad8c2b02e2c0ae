/** One colour, icon and label per task state, used everywhere (graph, lists, detail, legend); worker and registry statuses borrow these colours. */
import type { RegistryEntry, TaskState, WorkerStatus } from "../../shared/api";

export interface StateStyle {
  label: string;
  icon: string;
  /** CSS variable holding the colour, so light and dark themes each get a readable shade. */
  color: string;
  help: string;
}

export const STATE_STYLES: Record<TaskState, StateStyle> = {
  PENDING: {
    label: "Pending",
    icon: "○",
    color: "var(--st-pending)",
    help: "published (or announced), not received by a worker yet",
  },
  SCHEDULED: {
    label: "Scheduled",
    icon: "◷",
    color: "var(--st-scheduled)",
    help: "received with an ETA or countdown; waiting for it",
  },
  RECEIVED: {
    label: "Received",
    icon: "◌",
    color: "var(--st-received)",
    help: "a worker holds it; not started yet",
  },
  STARTED: { label: "Running", icon: "▶", color: "var(--st-started)", help: "running now" },
  RETRY: {
    label: "Retrying",
    icon: "↻",
    color: "var(--st-retry)",
    help: "an attempt failed; another is coming",
  },
  SUCCESS: { label: "Success", icon: "✓", color: "var(--st-success)", help: "finished" },
  FAILURE: { label: "Failure", icon: "✕", color: "var(--st-failure)", help: "raised an exception" },
  REVOKED: {
    label: "Revoked",
    icon: "⊘",
    color: "var(--st-revoked)",
    help: "revoked, expired or terminated",
  },
  REJECTED: {
    label: "Rejected",
    icon: "⇥",
    color: "var(--st-revoked)",
    help: "the worker rejected the message",
  },
  IGNORED: { label: "Ignored", icon: "–", color: "var(--st-pending)", help: "the task ignored its result" },
  UNREGISTERED: {
    label: "Unregistered",
    icon: "?",
    color: "var(--st-failure)",
    help: "no worker has this task name registered",
  },
  INTERRUPTED: {
    label: "Interrupted",
    icon: "⚡",
    color: "var(--st-interrupted)",
    help: "the run ended without a result (terminate, time limit, cold shutdown)",
  },
  LOST: {
    label: "Lost",
    icon: "☁",
    color: "var(--st-interrupted)",
    help: "its worker vanished while it ran",
  },
  NOT_RUN: {
    label: "Not run",
    icon: "⊖",
    color: "var(--st-notrun)",
    help: "can no longer run: something upstream failed",
  },
  REPLACED: {
    label: "Replaced",
    icon: "⇄",
    color: "var(--st-pending)",
    help: "replaced by another task (Task.replace)",
  },
};

export const ALL_STATES = Object.keys(STATE_STYLES) as TaskState[];

/** A worker's status badge (Workers page, dashboard) in the colour of the task state it reads like. */
export const WORKER_STATUS_COLORS: Record<WorkerStatus, string> = {
  ONLINE: STATE_STYLES.SUCCESS.color,
  OFFLINE: STATE_STYLES.PENDING.color,
  LOST: STATE_STYLES.LOST.color,
};

/** A task name's registry status (Registry page): label and the colour of the task state it reads like. */
export const REGISTRY_STATUS_STYLES: Record<RegistryEntry["status"], { label: string; color: string }> = {
  ACTIVE: { label: "Active", color: STATE_STYLES.SUCCESS.color },
  NEVER_RUN: { label: "Never run", color: STATE_STYLES.PENDING.color },
  NOT_REGISTERED: { label: "Not registered", color: STATE_STYLES.UNREGISTERED.color },
};
