/**
 * elk runs in a Web Worker (its own worker script, a separate asset): a layout never blocks
 * scrolling, clicks or live updates. The worker starts when a trace page mounts, in parallel with
 * the snapshot request, and is reused for every later layout. elk-api itself is 4 kB.
 *
 * A fresh worker's first layout is slow (~200 ms for 20 boxes: elk's code compiled on first
 * use), so the worker lays out a tiny graph with the same options while the snapshot loads; the
 * trace's own layout then takes about a third of that.
 */
import Elk from "elkjs/lib/elk-api.js";
import workerUrl from "elkjs/lib/elk-worker.min.js?url";
import type { ElkNode } from "elkjs/lib/elk-api.js";
import { ELK_MODEL_ORDER, ELK_OPTIONS, type ElkLike } from "./layout";

let instance: ElkLike | null = null;

export function elkInWorker(): Promise<ElkLike> {
  if (!instance) {
    const elk = new Elk({ workerFactory: () => new Worker(workerUrl) });
    instance = { layout: (graph: ElkNode) => elk.layout(graph) };
    void elk.layout(warmUpGraph()).catch(() => undefined);
  }
  return Promise.resolve(instance);
}

/** A small graph like the real ones: tasks, a grid box, a fold stub, a fan-out. */
function warmUpGraph(): ElkNode {
  const box = (id: string, width: number, height: number): ElkNode => ({ id, width, height });
  return {
    id: "warm-up",
    layoutOptions: { ...ELK_OPTIONS, ...ELK_MODEL_ORDER },
    children: [box("a", 216, 60), box("g", 466, 300), box("b", 216, 60), box("c", 216, 60), box("m", 216, 44)],
    edges: [
      { id: "a-g", sources: ["a"], targets: ["g"] },
      { id: "a-b", sources: ["a"], targets: ["b"] },
      { id: "a-m", sources: ["a"], targets: ["m"] },
      { id: "g-c", sources: ["g"], targets: ["c"] },
    ],
  };
}
