/**
 * elk runs in a Web Worker (its own worker script, a separate asset): a layout never blocks
 * scrolling, clicks or live updates. The worker starts when a trace page is opened (main.tsx, in
 * parallel with the snapshot request) or mounts, and is reused for every later layout. elk-api
 * itself is 4 kB.
 *
 * A fresh worker's first layout is slow (~200 ms for 20 boxes, elk's code compiling on first use,
 * after ~150–350 ms compiling the script): large traces that are trees skip elk (layout.ts).
 */
import Elk from "elkjs/lib/elk-api.js";
import workerUrl from "elkjs/lib/elk-worker.min.js?url";
import type { ElkNode } from "elkjs/lib/elk-api.js";
import type { ElkLike } from "./types";

let instance: ElkLike | null = null;

export function elkInWorker(): Promise<ElkLike> {
  if (!instance) {
    const elk = new Elk({ workerFactory: () => new Worker(workerUrl) });
    instance = { layout: (graph: ElkNode) => elk.layout(graph) };
  }
  return Promise.resolve(instance);
}
