/**
 * Time for the jobs service: the current time and one-shot timers (rollout minutes, step and
 * in-progress timeouts). Injected so tests drive a rollout or a 7-day timeout on a virtual clock.
 */
export interface JobsClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds; returns a handle for clearTimeout. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Node timers hold at most 2^31-1 ms (~24.8 days); a longer one fires at once. The longest jobs
 * timer is 7 days, so one timer is enough; the clamp only keeps a bad deadline from firing early
 * in a loop (it fires, finds the deadline not reached, and re-arms).
 */
const MAX_TIMER_MS = 2_147_483_647;

export function systemJobsClock(now: () => number = Date.now): JobsClock {
  return {
    now,
    setTimeout(fn, ms) {
      const t = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
      // A pending timeout must not keep a stopping process alive; stop() clears them anyway.
      t.unref();
      return t;
    },
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}
