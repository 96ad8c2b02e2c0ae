/**
 * Time-travel replay on the trace page: the page URL's `?at=<epoch seconds>` names the moment
 * (so a shared link opens there), `useReplay` fetches the trace as it was then, and the bar scrubs,
 * steps event by event and plays. Leaving replay drops `at` and the page is live again.
 */
import { useQuery, type UseQueryResult } from "@tanstack/react-query";
import { useEffect, useState, type KeyboardEvent } from "react";
import { parseReplayAt, type ReplaySnapshot } from "../../../shared/replay";
import { traceAtQuery } from "../api/client";
import { dateTime, duration, isoTime, time } from "../format";
import { navigate, useLocation } from "../router";
import "./replay.css";

export interface Replay {
  /** The moment in the page URL, or null when the page is live. */
  at: number | null;
  /** Why the URL's `at` was not taken (the page stays live), or null. */
  error: string | null;
  query: UseQueryResult<ReplaySnapshot, Error>;
}

/** Sets the page URL's `at` (other parameters kept); null leaves replay. */
function goTo(at: number | null, newEntry = false) {
  const next = new URLSearchParams(window.location.search);
  if (at === null) next.delete("at");
  else next.set("at", String(at));
  const qs = next.toString();
  // Entering and leaving replay are history entries (Back returns); scrubbing is not.
  navigate(`${window.location.pathname}${qs ? `?${qs}` : ""}`, !newEntry);
}

/** The replayed trace when the URL names a moment; the query stays idle otherwise. */
export function useReplay(traceId: string): Replay {
  const { search } = useLocation();
  const raw = search.get("at");
  const parsed = raw === null ? null : parseReplayAt(raw);
  const at = parsed && "at" in parsed ? parsed.at : null;
  const query = useQuery({ ...traceAtQuery(traceId, at ?? 0), enabled: at !== null });
  return { at, error: parsed && "error" in parsed ? parsed.error : null, query };
}

/** Opens replay at `start` (the trace's first moment, as far as the live view knows it). */
export function ReplayButton({ start }: { start: number | null }) {
  return (
    <button
      className="replay-open"
      onClick={() => goTo(start ?? Date.now() / 1000, true)}
      title="Replay this trace: scrub, step or play through its events and see the graph and timeline as they were"
    >
      <Icon name="play" /> Replay
    </button>
  );
}

/** Media-control glyphs as SVG: the ⏮ ⏵ ⏭ characters are missing from many system fonts. */
const ICONS = {
  previous: "M6 5h2v14H6zM20 5v14L9 12z",
  play: "M7 5v14l12-7z",
  pause: "M6 5h4v14H6zM14 5h4v14h-4z",
  next: "M16 5h2v14h-2zM4 5v14l11-7z",
};
function Icon({ name }: { name: keyof typeof ICONS }) {
  return (
    <svg width="14" height="14" viewBox="0 0 24 24" aria-hidden className="replay-icon">
      <path d={ICONS[name]} fill="currentColor" />
    </svg>
  );
}

interface Speed {
  label: string;
  /** One event per `everyMs`; or the whole run in `seconds`; or `factor` × real time. */
  everyMs?: number;
  seconds?: number;
  factor?: number;
}

/** Celery traces last from milliseconds to hours: event steps and run-relative speeds suit both. */
const SPEEDS: readonly Speed[] = [
  { label: "1 event/s", everyMs: 1000 },
  { label: "4 events/s", everyMs: 250 },
  { label: "whole run in 10 s", seconds: 10 },
  { label: "whole run in 1 min", seconds: 60 },
  { label: "real time", factor: 1 },
];
/** How often time-based play advances. */
const TICK_MS = 200;
/** How long the slider waits for the hand to rest before it asks for the moment. */
const SCRUB_MS = 80;

export function ReplayBar({ replay }: { replay: Replay }) {
  const { at, error, query } = replay;
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(0);
  const [draft, setDraft] = useState<number | null>(null);
  const info = query.data?.replay;
  // The moment on screen is the one asked for (not the previous one kept while it loads).
  const ready = at !== null && info !== undefined && info.at === at && !query.isPlaceholderData;

  // Dragging: the URL (and the fetch) follows the slider once it rests a moment.
  useEffect(() => {
    if (draft === null) return;
    const timer = setTimeout(() => {
      goTo(draft);
      setDraft(null);
    }, SCRUB_MS);
    return () => clearTimeout(timer);
  }, [draft]);

  // Playing: one step per tick, each after the previous moment has arrived (a slow network slows
  // the play down instead of queueing requests).
  useEffect(() => {
    if (!playing || !ready || at === null || !info) return;
    const s = SPEEDS[speed]!;
    const timer = setTimeout(() => {
      let next: number | null;
      if (s.everyMs) next = info.next_at;
      else {
        const span = info.last_event_at - info.first_event_at;
        const step = s.seconds ? (span * TICK_MS) / 1000 / s.seconds : ((s.factor ?? 1) * TICK_MS) / 1000;
        next = at >= info.last_event_at || step <= 0 ? null : Math.min(at + step, info.last_event_at);
      }
      if (next === null) setPlaying(false);
      else goTo(next);
    }, SPEEDS[speed]!.everyMs ?? TICK_MS);
    return () => clearTimeout(timer);
  }, [playing, ready, at, info, speed]);

  if (at === null && error === null) return null;
  if (error !== null || at === null)
    return (
      <div className="replay-bar" role="region" aria-label="Replay">
        <span className="replay-label">Replay</span>
        <span className="replay-error">The link's moment is not valid: {error}. Showing the trace live.</span>
        <button onClick={() => goTo(null, true)}>Back to live</button>
      </div>
    );
  if (!info)
    return (
      <div className="replay-bar" role="region" aria-label="Replay">
        <span className="replay-label">Replay</span>
        <span className="muted">
          {query.isError ? query.error.message : `Loading the trace at ${dateTime(at)}…`}
        </span>
        <button onClick={() => goTo(null, true)}>Back to live</button>
      </div>
    );

  const first = info.first_event_at;
  const last = info.last_event_at;
  const value = Math.min(Math.max(draft ?? at, first), last);
  const fraction = last > first ? (value - first) / (last - first) : 1;
  const most = Math.max(1, ...info.density);
  const step = (to: number | null) => {
    if (to === null) return;
    setPlaying(false);
    goTo(to);
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    // Arrow keys step event by event: between events nothing changes.
    if (e.key === "ArrowLeft" || e.key === "ArrowDown") step(info.previous_at);
    else if (e.key === "ArrowRight" || e.key === "ArrowUp") step(info.next_at);
    else return;
    e.preventDefault();
  };
  const atEnd = info.next_at === null;
  return (
    <div className="replay-bar" role="region" aria-label="Replay">
      <span
        className="replay-label"
        title="The graph and timeline show the trace as it was at this moment, from its events (task details on the side show the task now)"
      >
        Replay
      </span>
      <div className="replay-buttons">
        <button
          aria-label="Previous event"
          title="Previous event (←)"
          disabled={!ready || info.previous_at === null}
          onClick={() => step(info.previous_at)}
        >
          <Icon name="previous" />
        </button>
        <button
          aria-label={playing ? "Pause" : "Play"}
          title={playing ? "Pause" : atEnd ? "Play from the start" : "Play"}
          onClick={() => {
            if (playing) return setPlaying(false);
            if (atEnd) goTo(first);
            setPlaying(true);
          }}
        >
          <Icon name={playing ? "pause" : "play"} />
        </button>
        <button
          aria-label="Next event"
          title="Next event (→)"
          disabled={!ready || info.next_at === null}
          onClick={() => step(info.next_at)}
        >
          <Icon name="next" />
        </button>
        <select aria-label="Speed" value={speed} onChange={(e) => setSpeed(Number(e.target.value))}>
          {SPEEDS.map((s, i) => (
            <option key={s.label} value={i}>
              {s.label}
            </option>
          ))}
        </select>
      </div>
      <div className="replay-track">
        <div className="replay-density" aria-hidden>
          {info.density.map((n, i) => (
            <span
              key={i}
              className={i / info.density.length <= fraction ? "past" : ""}
              style={{ height: n ? `${25 + (75 * Math.log1p(n)) / Math.log1p(most)}%` : 0 }}
            />
          ))}
        </div>
        <input
          type="range"
          aria-label="Moment"
          min={first}
          max={last}
          step="any"
          value={value}
          onChange={(e) => {
            setPlaying(false);
            setDraft(Number(e.target.value));
          }}
          onKeyDown={onKey}
        />
      </div>
      <div className="replay-readout" title={isoTime(value)}>
        <b className="mono">{time(value)}</b>
        <span>{value <= first ? "the first event" : `+${duration((value - first) * 1000)} from start`}</span>
        <span className="muted">
          {info.events_applied} of {info.events_total} events
        </span>
      </div>
      <button
        className="replay-close"
        onClick={() => goTo(null, true)}
        title="Leave replay: back to the live trace"
      >
        Back to live
      </button>
    </div>
  );
}
