/**
 * The current time as a value that changes every `everyMs`, so rendering stays pure (no Date.now()
 * during render: the same render always shows the same "now"). One timer per period, shared, and
 * running only while something listens.
 */
import { useSyncExternalStore } from "react";

interface Clock {
  get: () => number;
  subscribe: (listener: () => void) => () => void;
}

const clocks = new Map<number, Clock>();

function clockOf(everyMs: number): Clock {
  let clock = clocks.get(everyMs);
  if (clock) return clock;
  let now = Date.now() / 1000;
  const listeners = new Set<() => void>();
  let timer: ReturnType<typeof setInterval> | undefined;
  clock = {
    get: () => now,
    subscribe: (listener) => {
      listeners.add(listener);
      if (!timer) {
        now = Date.now() / 1000;
        timer = setInterval(() => {
          now = Date.now() / 1000;
          for (const l of listeners) l();
        }, everyMs);
      }
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
  };
  clocks.set(everyMs, clock);
  return clock;
}

/** Epoch seconds, refreshed every `everyMs`. */
export function useNow(everyMs: number): number {
  const clock = clockOf(everyMs);
  return useSyncExternalStore(clock.subscribe, clock.get);
}
