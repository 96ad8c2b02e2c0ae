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
  connectionSummary = states.includes("reconnecting")
    ? "reconnecting"
    : states.includes("connecting")
      ? "connecting"
      : "live";
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

/** How often the client pings, and how long a silent socket is trusted before it reconnects. */
const PING_MS = 25_000;
const SILENT_MS = 60_000;

/** Keeps a socket open with exponential backoff; `onMessage` gets every text frame but "pong". */
function keepOpen(
  key: string,
  path: string,
  onMessage: (data: string) => void,
  onOpen: () => void,
): () => void {
  let ws: WebSocket | null = null;
  let closed = false;
  let delay = 500;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pinger: ReturnType<typeof setInterval> | undefined;
  let heardAt = Date.now();
  const connect = () => {
    setConnection(key, delay > 500 ? "reconnecting" : "connecting");
    const socket = new WebSocket(socketUrl(path));
    ws = socket;
    socket.onopen = () => {
      delay = 500;
      heardAt = Date.now();
      setConnection(key, "live");
      onOpen();
      // A connection that died without a close (sleep, network change) is found by its silence.
      clearInterval(pinger);
      pinger = setInterval(() => {
        if (Date.now() - heardAt > SILENT_MS) socket.close();
        else if (socket.readyState === WebSocket.OPEN) socket.send("ping");
      }, PING_MS);
    };
    socket.onmessage = (m) => {
      heardAt = Date.now();
      if (typeof m.data === "string" && m.data !== "pong") onMessage(m.data);
    };
    socket.onclose = () => {
      clearInterval(pinger);
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
    clearInterval(pinger);
    ws?.close();
    setConnection(key, null);
  };
}

/**
 * Applies one frame of a trace's socket to the cached snapshot, whose `seq` is the baseline: a
 * frame the snapshot already includes is ignored, the next one is patched in, anything else (a
 * gap, a hello ahead of the snapshot: frames sent between the snapshot and the socket opening)
 * refetches. `newest` remembers the highest seq seen, so a snapshot that lands older than a frame
 * already received is refetched too (see useTraceLive).
 */
export function applyTraceMessage(
  client: QueryClient,
  traceId: string,
  msg: TraceLiveMessage,
  newest: { current: number },
) {
  const key = keys.trace(traceId);
  newest.current = Math.max(newest.current, msg.seq);
  const current = client.getQueryData<TraceSnapshot>(key);
  if (!current) return; // the snapshot on its way is checked against `newest` when it lands
  if (msg.type === "hello") {
    if (msg.seq > current.seq) void client.invalidateQueries({ queryKey: key });
    return;
  }
  if (msg.seq <= current.seq) return; // already in the snapshot
  const known = new Set(current.nodes.map((n) => n.id));
  const sameContainers =
    !msg.containers ||
    (msg.containers.length === current.containers.length &&
      msg.containers.every((c) => current.containers.some((x) => x.id === c.id)));
  if (
    msg.seq !== current.seq + 1 ||
    msg.structure_changed ||
    !sameContainers ||
    msg.nodes.some((n) => !known.has(n.id))
  ) {
    void client.invalidateQueries({ queryKey: key });
    return;
  }
  const changed = new Map(msg.nodes.map((n) => [n.id, n]));
  client.setQueryData<TraceSnapshot>(key, {
    ...current,
    seq: msg.seq,
    // Delta nodes and summary carry their anomaly marks and derived states: take them as they are.
    summary: msg.summary,
    nodes: current.nodes.map((n) => changed.get(n.id) ?? n),
    containers: msg.containers ?? current.containers,
  });
  for (const id of changed.keys()) void client.invalidateQueries({ queryKey: keys.task(id) });
  if (msg.summary.anomaly_count !== current.summary.anomaly_count)
    void client.invalidateQueries({ queryKey: ["anomalies"] });
}

/** Subscribes the trace page to its trace's deltas. */
export function useTraceLive(traceId: string) {
  const client = useQueryClient();
  useEffect(() => {
    const newest = { current: -1 };
    const key = keys.trace(traceId);
    // A snapshot that lands older than a frame already seen missed that frame: fetch again.
    const unsubscribe = client.getQueryCache().subscribe((event) => {
      if (event.type !== "updated" || event.action.type !== "success") return;
      if (JSON.stringify(event.query.queryKey) !== JSON.stringify(key)) return;
      const snap = event.query.state.data as TraceSnapshot | undefined;
      if (snap && snap.seq < newest.current) void client.invalidateQueries({ queryKey: key });
    });
    const close = keepOpen(
      `trace:${traceId}`,
      `/api/traces/${encodeId(traceId)}/live`,
      (data) => {
        const parsed = TraceLiveMessage.safeParse(parseFrame(data));
        if (parsed.success) applyTraceMessage(client, traceId, parsed.data, newest);
      },
      () => undefined,
    );
    return () => {
      unsubscribe();
      close();
    };
  }, [client, traceId]);
}

/**
 * The `/api/live` sequence check: consecutive frames patch in place; a gap or a reconnect (frames
 * may have been missed) refetches what the frames would have changed.
 */
export function globalSeqGap(last: { current: number }, seq: number): boolean {
  const gap = last.current !== -1 && seq !== last.current + 1;
  last.current = seq;
  return gap;
}

/** Subscribes to list, fleet and anomaly news: patches the first page of trace lists in place. */
export function useGlobalLive() {
  const client = useQueryClient();
  useEffect(() => {
    const last = { current: -1 };
    const refetchAll = () => {
      for (const key of [["traces"], ["tasks"], ["workers"], ["anomalies"], ["stats"]])
        void client.invalidateQueries({ queryKey: key });
    };
    return keepOpen(
      "global",
      "/api/live",
      (data) => {
        const parsed = GlobalLiveMessage.safeParse(parseFrame(data));
        if (!parsed.success) return;
        const msg = parsed.data;
        if (msg.type === "hello") {
          // First open: the list may have been fetched before it (one refetch, as cheap as a page);
          // a reconnect: refetch only if frames were sent meanwhile.
          if (last.current === -1) void client.invalidateQueries({ queryKey: ["traces"] });
          else if (msg.seq !== last.current) refetchAll();
          last.current = msg.seq;
          return;
        }
        if (globalSeqGap(last, msg.seq)) {
          refetchAll();
          return;
        }
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
      () => undefined, // the hello that follows says whether anything was missed
    );
  }, [client]);
}
