/** The application: routes, the top bar, React Query. Loaded by main.tsx. */
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { StrictMode, useEffect, useState, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { healthQuery } from "./api/client";
import { Boundary } from "./components/Boundary";
import { useConnectionState, useGlobalLive } from "./api/live";
import { DashboardPage } from "./pages/DashboardPage";
import { RegistryPage } from "./pages/RegistryPage";
import { TaskPage } from "./pages/TaskPage";
import { TracePage } from "./pages/TracePage";
import { TracesPage } from "./pages/TracesPage";
import { WorkersPage } from "./pages/WorkersPage";
import { WebhooksPage } from "./pages/WebhooksPage";
import { TasksPage } from "./pages/TasksPage";
import { Link, useLocation } from "./router";
import { matchRoute, type PageName, type RouteMatch } from "./routes";

const queryClient = new QueryClient({
  defaultOptions: { queries: { staleTime: 5_000, refetchOnWindowFocus: false, retry: 1 } },
});

function Connection() {
  const state = useConnectionState();
  const label = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…" }[state];
  return (
    <span className={`connection ${state}`} title="Live updates over WebSocket">
      ● {label}
    </span>
  );
}

function ThemeToggle() {
  const [theme, setTheme] = useState(() => localStorage.getItem("stemtrace-theme") ?? "auto");
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  const next = theme === "auto" ? "dark" : theme === "dark" ? "light" : "auto";
  // Stored on a click only: writing it on mount overwrote a choice stored meanwhile (another tab).
  const choose = () => {
    localStorage.setItem("stemtrace-theme", next);
    setTheme(next);
  };
  return (
    <button className="theme" onClick={choose} title={`Theme: ${theme} (click for ${next})`}>
      {theme === "dark" ? "☾" : theme === "light" ? "☀" : "◐"}
    </button>
  );
}

/** Every page of the route table (routes.ts), given what its route captured. */
const PAGES: Record<PageName, (m: RouteMatch) => ReactNode> = {
  trace: (m) => <TracePage key={m.segment} traceId={m.id!} />,
  task: (m) => <TaskPage key={m.segment} taskId={m.id!} />,
  tasks: () => <TasksPage />,
  workers: () => <WorkersPage />,
  registry: () => <RegistryPage />,
  dashboard: () => <DashboardPage />,
  traces: () => <TracesPage />,
  webhooks: () => <WebhooksPage />,
};

function Routes() {
  const { path } = useLocation();
  const match = matchRoute(path);
  const title = match ? `${match.route.title(match.id)} · stemtrace` : "stemtrace";
  useEffect(() => {
    document.title = title;
  }, [title]);
  if (match) return PAGES[match.route.page](match);
  return (
    <div className="empty page">
      <h2>Nothing here</h2>
      <p>
        <Link to="/">Back to the traces</Link>
      </p>
    </div>
  );
}

function App() {
  useGlobalLive();
  const { path } = useLocation();
  const health = useQuery(healthQuery());
  const nav = [
    ["/", "Traces"],
    ["/tasks", "Tasks"],
    ["/dashboard", "Dashboard"],
    ["/workers", "Workers"],
    ["/registry", "Registry"],
    ["/webhooks", "Webhooks"],
  ];
  return (
    <div className="app">
      <Boundary region="header">
        <nav className="topbar">
          <Link to="/" className="brand">
            <svg className="logo" width="18" height="18" viewBox="0 0 16 16" aria-hidden>
              <circle cx="3.5" cy="8" r="2.5" />
              <circle cx="12.5" cy="3.5" r="2.5" />
              <circle cx="12.5" cy="12.5" r="2.5" />
              <path d="M5.5 7 10.5 4M5.5 9l5 3" strokeWidth="1.4" />
            </svg>{" "}
            stemtrace
          </Link>
          {nav.map(([to, label]) => (
            <Link
              key={to}
              to={to!}
              className={
                (to === "/" ? path === "/" || path.startsWith("/traces") : path.startsWith(to!))
                  ? "active"
                  : ""
              }
            >
              {label}
            </Link>
          ))}
          <span className="spacer" />
          {health.data?.auth_mode === "none" && (
            <span className="local-mode" title="AUTH_MODE is off: fine on localhost, never on the internet">
              local mode · auth off
            </span>
          )}
          <Connection />
          <ThemeToggle />
        </nav>
      </Boundary>
      <main>
        {/* Keyed by path: a page that failed starts afresh when you go elsewhere. */}
        <Boundary region="page" key={path}>
          <Routes />
        </Boundary>
      </main>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
