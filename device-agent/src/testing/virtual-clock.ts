import type { Clock, TimerHandle } from '../ports/clock.js';

/**
 * A clock whose time only moves when told to: `advance(ms)` fires every timer that falls due
 * in order, each at its own due time. With `auto: true` time also jumps forward by itself to
 * the next timer once the event loop is otherwise idle for a turn (a "virtual time" executor),
 * so code that awaits clock sleeps runs at full speed without a test driving it.
 */
export interface VirtualClock extends Clock {
  /** Moves time forward by `ms`, firing due timers (and timers they schedule) in order. */
  advance(ms: number): Promise<void>;
  /** Moves time to the next pending timer and fires it; false if none is pending. */
  next(): Promise<boolean>;
  /** Number of timers not yet fired or cleared. */
  pending(): number;
}

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** Lets promise continuations scheduled by fired timers run before time moves on. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

export function createVirtualClock(options: { start?: number; auto?: boolean } = {}): VirtualClock {
  let now = options.start ?? Date.UTC(2026, 0, 1, 0, 0, 0);
  let seq = 0;
  const timers = new Map<number, Timer>();
  let autoScheduled = false;

  const due = (limit: number): Timer | undefined => {
    let best: Timer | undefined;
    for (const t of timers.values()) {
      if (t.at <= limit && (best === undefined || t.at < best.at || (t.at === best.at && t.id < best.id))) best = t;
    }
    return best;
  };

  const fire = (t: Timer) => {
    timers.delete(t.id);
    if (t.at > now) now = t.at;
    t.fn();
  };

  const scheduleAuto = () => {
    if (!options.auto || autoScheduled) return;
    autoScheduled = true;
    setImmediate(() => {
      autoScheduled = false;
      const t = due(Number.POSITIVE_INFINITY);
      if (t) {
        fire(t);
        if (timers.size > 0) scheduleAuto();
      }
    });
  };

  return {
    now: () => now,
    setTimeout(fn, ms) {
      seq += 1;
      const t: Timer = { id: seq, at: now + Math.max(0, ms), fn };
      timers.set(t.id, t);
      scheduleAuto();
      return { id: t.id } as unknown as TimerHandle;
    },
    clearTimeout(handle) {
      const id = (handle as { id?: unknown } | undefined)?.id;
      if (typeof id === 'number') timers.delete(id);
    },
    async advance(ms) {
      const target = now + Math.max(0, ms);
      await flush();
      for (let t = due(target); t !== undefined; t = due(target)) {
        fire(t);
        await flush();
      }
      now = target;
      await flush();
    },
    async next() {
      await flush();
      const t = due(Number.POSITIVE_INFINITY);
      if (!t) return false;
      fire(t);
      await flush();
      return true;
    },
    pending: () => timers.size,
  };
}
