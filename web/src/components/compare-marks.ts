/**
 * How the trace graph marks each task while "Compare" is on (CompareBar.tsx): a tone from the
 * step's delta (slower = warm, faster = cool) or a flag (newly failed, newly not run, new step),
 * and a short label for the card. TaskCard (graph/nodes.tsx) reads them through CompareContext.
 */
import { createContext } from "react";
import type { StepDiff, TraceDiff } from "../../../shared/api";
import { duration } from "../format";

export type CompareMetric = "runtime" | "queue_wait";

export type CompareTone =
  | "failed"
  | "not-run"
  | "added"
  | "slower-3"
  | "slower-2"
  | "slower-1"
  | "same"
  | "faster-1"
  | "faster-2"
  | "faster-3";

export interface CompareMark {
  tone: CompareTone;
  label: string;
  /** The card's tooltip line. */
  detail: string;
}

/** Task id → its mark; empty when Compare is off (cards are drawn as usual). */
export const CompareContext = createContext<ReadonlyMap<string, CompareMark>>(new Map());

/** Under this change (ratio and ms alike) a step is drawn as unchanged. */
const SAME_RATIO = 0.1;
const SAME_MS = 1;

/** The tone of a change of `ratio` (now / then): three steps each way. */
export function toneOf(delta: number | null, ratio: number | null): CompareTone | null {
  if (delta === null) return null;
  if (Math.abs(delta) < SAME_MS) return "same";
  const r = ratio ?? (delta > 0 ? Infinity : 0);
  if (r >= 1 + SAME_RATIO) return r >= 3 ? "slower-3" : r >= 1.5 ? "slower-2" : "slower-1";
  if (r <= 1 - SAME_RATIO) return r <= 1 / 3 ? "faster-3" : r <= 1 / 1.5 ? "faster-2" : "faster-1";
  return "same";
}

export function signedDuration(ms: number): string {
  return `${ms > 0 ? "+" : ms < 0 ? "−" : "±"}${duration(Math.abs(ms))}`;
}

/** now / then, to two significant digits below 0.1 (a step 500× faster is ×0.002, not ×0.00). */
export function ratioText(ratio: number): string {
  return `×${ratio < 0.1 ? ratio.toPrecision(1) : ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(0)}`;
}

export function markOf(step: StepDiff, metric: CompareMetric): CompareMark | null {
  const m = step[metric];
  const what = metric === "runtime" ? "runtime" : "queue wait";
  const change =
    m.delta_ms === null
      ? `${what}: ${duration(m.then)} → ${duration(m.now)}`
      : `${what} ${duration(m.then)} → ${duration(m.now)} (${signedDuration(m.delta_ms)}${m.ratio !== null ? `, ${ratioText(m.ratio)}` : ""})`;
  if (step.newly_failed) return { tone: "failed", label: "newly failed", detail: `newly failed · ${change}` };
  if (step.newly_not_run) return { tone: "not-run", label: "now not run", detail: "did not run this time" };
  if (step.added) return { tone: "added", label: "new step", detail: "only in this run" };
  const tone = toneOf(m.delta_ms, m.ratio);
  if (!tone) return null;
  const label = tone === "same" ? "≈" : signedDuration(m.delta_ms!);
  return {
    tone,
    label: step.newly_retried ? `${label} ↻+${(step.retries.now ?? 0) - (step.retries.then ?? 0)}` : label,
    detail: `${change}${step.newly_retried ? ` · retried ${step.retries.then ?? 0} → ${step.retries.now ?? 0}` : ""}`,
  };
}

export function marksOf(diff: TraceDiff | undefined, metric: CompareMetric): Map<string, CompareMark> {
  const marks = new Map<string, CompareMark>();
  for (const step of diff?.steps ?? []) {
    if (!step.task_id) continue;
    const mark = markOf(step, metric);
    if (mark) marks.set(step.task_id, mark);
  }
  return marks;
}
