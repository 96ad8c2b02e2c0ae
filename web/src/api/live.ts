/**
 * Live updates: the sockets patch the React Query cache (setQueryData) or invalidate it, and a
 * `seq` gap means a frame was missed, so the snapshot is refetched. Reconnects with backoff.
 */
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useSyncExternalStore } from "react";
import { GlobalLiveMessage, TraceLiveMessage, type TraceList, type TraceSnapshot } from "../../../shared/api";
import { encodeId } from "../format";
import { keys } from "./client";

/** A frame that is not JSON is ignored like one of an unknown shape (it must not throw in the handler). */
function parseFrame(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

export type ConnectionState = "connecting" | "live" | "reconnecting";

/** One store for the connection indicator: the worst state of the open sockets. */
const connections = new Map<string, ConnectionState>();
const listeners = new Set<() => void>();
let connectionSummary: ConnectionState = "connecting";
function setConnection(key: string, state: ConnectionState | null) {
  if (state === null) connections.delete(key);
  else connections.set(key, state);
  const states = [...connections.values()];
  connectionSummary = states.includes("reconnecting") ? "reconnecting" : states.includes("connecting") ? "connecting" : "live";
  for (const l of listeners) l();
}
export function useConnectionState(): ConnectionState {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => connectionSummary,
  );
}

function socketUrl(path: string): string {
  const { protocol, host } = window.location;
  return `${protocol === "https:" ? "wss" : "ws"}://${host}${path}`;
}

/** Keeps a socket open with exponential backoff; `onMessage` gets every text frame. */
function keepOpen(key: string, path: string, onMessage: (data: string) => void, onOpen: () => void): () => void {
  let ws: WebSocket | null = null;
  let closed = false;
  let delay = 500;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connect = () => {
    setConnection(key, delay > 500 ? "reconnecting" : "connecting");
    ws = new WebSocket(socketUrl(path));
    ws.onopen = () => {
      delay = 500;
      setConnection(key, "live");
      onOpen();
    };
    ws.onmessage = (m) => typeof m.data === "string" && onMessage(m.data);
    ws.onclose = () => {
      if (closed) return;
      setConnection(key, "reconnecting");
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10_000);
    };
  };
  connect();
  return () => {
    closed = true;
    clearTimeout(timer);
    ws?.close();
    setConnection(key, null);
  };
}

export function applyTraceMessage(client: QueryClient, traceId: string, msg: TraceLiveMessage, lastSeq: { current: number }) {
  const key = keys.trace(traceId);
  if (msg.type === "hello") {
    if (lastSeq.current !== -1 && msg.seq !== lastSeq.current) void client.invalidateQueries({ queryKey: key });
    lastSeq.current = msg.seq;
    return;
  }
  const gap = lastSeq.current !== -1 && msg.seq !== lastSeq.current + 1;
  lastSeq.current = msg.seq;
  const current = client.getQueryData<TraceSnapshot>(key);
  if (gap || msg.structure_changed || !current) {
    void client.invalidateQueries({ queryKey: key });
    return;
  }
  const changed = new Map(msg.nodes.map((n) => [n.id, n]));
  client.setQueryData<TraceSnapshot>(key, {
    ...current,
    seq: msg.seq,
    // Delta nodes and summary carry their anomaly marks: take them as they are.
    summary: msg.summary,
    nodes: current.nodes.map((n) => changed.get(n.id) ?? n),
  });
  for (const id of changed.keys()) void client.invalidateQueries({ queryKey: keys.task(id) });
  if (msg.summary.anomaly_count !== current.summary.anomaly_count) void client.invalidateQueries({ queryKey: ["anomalies"] });
}

/** Subscribes the trace page to its trace's deltas. */
export function useTraceLive(traceId: string) {
  const client = useQueryClient();
  useEffect(() => {
    const lastSeq = { current: -1 };
    return keepOpen(
      `trace:${traceId}`,
      `/api/traces/${encodeId(traceId)}/live`,
      (data) => {
        const parsed = TraceLiveMessage.safeParse(parseFrame(data));
        if (parsed.success) applyTraceMessage(client, traceId, parsed.data, lastSeq);
      },
      () => undefined,
    );
  }, [client, traceId]);
}

/** Subscribes to list, fleet and anomaly news: patches the first page of trace lists in place. */
export function useGlobalLive() {
  const client = useQueryClient();
  useEffect(
    () =>
      keepOpen(
        "global",
        "/api/live",
        (data) => {
          const parsed = GlobalLiveMessage.safeParse(parseFrame(data));
          if (!parsed.success) return;
          const msg = parsed.data;
          if (msg.type === "trace") {
            let found = false;
            client.setQueriesData<TraceList>({ queryKey: ["traces"] }, (list) => {
              if (!list) return list;
              const index = list.traces.findIndex((t) => t.trace_id === msg.summary.trace_id);
              if (index === -1) return list;
              found = true;
              const traces = [...list.traces];
              traces[index] = msg.summary;
              return { ...list, traces };
            });
            if (!found) void client.invalidateQueries({ queryKey: ["traces"] });
          } else if (msg.type === "worker") void client.invalidateQueries({ queryKey: ["workers"] });
          else if (msg.type === "anomaly") {
            void client.invalidateQueries({ queryKey: ["anomalies"] });
            void client.invalidateQueries({ queryKey: ["stats"] });
          }
        },
        () => void client.invalidateQueries({ queryKey: ["traces"] }),
      ),
    [client],
  );
}
