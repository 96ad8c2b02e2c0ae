/**
 * Entry point, kept tiny: on a trace page it starts what the graph waits for — elk's worker
 * (which then compiles on another core) and the snapshot request — before the application's code,
 * most of the bundle, is evaluated; then it loads the application.
 */
import "./zod-config";
import "@xyflow/react/dist/style.css";
import "./styles.css";
import { prefetch } from "./api/early";
import { decodeSegment, encodeId } from "./format";
import { elkInWorker } from "./graph/elk";

const trace = window.location.pathname.match(/^\/traces\/([^/]+)$/);
if (trace) {
  void elkInWorker();
  // Never throws (a malformed %-escape or a lone surrogate): the application must still load.
  prefetch(`/api/traces/${encodeId(decodeSegment(trace[1]!))}`);
}
void import("./app");
