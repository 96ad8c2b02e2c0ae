/**
 * Entry point, kept tiny: on a trace page it starts what the graph waits for — elk's worker
 * (which then compiles on another core) and the snapshot request — before the application's code,
 * most of the bundle, is evaluated; then it loads the application.
 */
import "@xyflow/react/dist/style.css";
import "./styles.css";
import { prefetch } from "./api/early";
import { elkInWorker } from "./graph/elk";

const trace = window.location.pathname.match(/^\/traces\/([^/]+)$/);
if (trace) {
  void elkInWorker();
  prefetch(`/api/traces/${encodeURIComponent(decodeURIComponent(trace[1]!))}`);
}
void import("./app");
