/**
 * Clock port: the only way agent code reads time or schedules work. Production uses
 * {@link createSystemClock}; tests and simulated fleets use a virtual clock
 * (`createVirtualClock` from `testing/virtual-clock.ts`, re-exported by the simulator), so
 * debounce windows, backoff and conversion delays run without real waiting.
 */

/** Opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /** Milliseconds since the Unix epoch (UTC). */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds (0 or more). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; cancelling a fired or unknown timer is a no-op. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `Date.now()` and Node timers. */
export function createSystemClock(): Clock {
  return {
    now: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}

/** Resolves after `ms` on the given clock (virtual clocks resolve when time is advanced). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimeout(resolve, ms);
  });
}

/**
 * Settles as `p` does, or rejects with `onTimeout()` if `p` has not settled `ms` later on the
 * given clock. The timer is cleared when `p` settles first.
 */
export function withTimeout<T>(clock: Clock, ms: number, p: Promise<T>, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(onTimeout()), ms);
    p.then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err);
      },
    );
  });
}
