/**
 * Entry point, kept tiny: on a trace page it starts what the graph waits for — elk's worker
 * (which then compiles on another core) and the snapshot request — before the application's code,
 * most of the bundle, is evaluated; then it loads the application.
 */
import "./zod-config";
import "@xyflow/react/dist/style.css";
import "./styles.css";
import { matchRoute } from "./routes";

// Never throws (a malformed %-escape or a lone surrogate stays encoded): the application must still load.
const route = matchRoute(window.location.pathname);
if (route?.route.prefetch && route.id !== null) route.route.prefetch(route.id);
void import("./app");
