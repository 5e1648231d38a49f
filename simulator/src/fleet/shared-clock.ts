import type { Clock, TimerHandle } from '@pifleet/device-agent';

interface Entry {
  fn: (() => void) | undefined;
}

export interface SharedClock extends Clock {
  /** Timers waiting to fire. */
  readonly pending: number;
  /** Cancels every timer and the underlying Node timer. */
  close(): void;
}

/**
 * One clock for every agent of a device host: timers are rounded up to a `resolutionMs` grid and
 * each grid slot is one array, with a single Node timer armed for the earliest slot. Thousands of
 * agents' sampling, batch-age and conversion timers then cost one array push each instead of one
 * Node timer each. Timers fire at most `resolutionMs` late, never early.
 */
export function createSharedClock(options: { resolutionMs?: number; now?: () => number } = {}): SharedClock {
  const res = Math.max(1, options.resolutionMs ?? 5);
  const realNow = options.now ?? Date.now;
  /** The slot being fired: callbacks see the time they were due, not the time they ran. */
  let firing: number | undefined;
  const now = () => firing ?? realNow();
  const slots = new Map<number, Entry[]>();
  /** Min-heap of slot times present in `slots`. */
  const heap: number[] = [];
  let pending = 0;
  let armed: { at: number; timer: NodeJS.Timeout } | undefined;
  let closed = false;

  const push = (v: number) => {
    heap.push(v);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((heap[p] as number) <= v) break;
      heap[i] = heap[p] as number;
      i = p;
    }
    heap[i] = v;
  };
  const pop = (): number | undefined => {
    const top = heap[0];
    const last = heap.pop();
    const n = heap.length;
    if (n === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (heap[r] as number) < (heap[l] as number) ? r : l;
      if ((heap[c] as number) >= last) break;
      heap[i] = heap[c] as number;
      i = c;
    }
    heap[i] = last;
    return top;
  };

  const arm = () => {
    if (closed) return;
    const next = heap[0];
    if (next === undefined) {
      if (armed) clearTimeout(armed.timer);
      armed = undefined;
      return;
    }
    if (armed && armed.at <= next) return;
    if (armed) clearTimeout(armed.timer);
    const timer = setTimeout(fire, Math.max(0, next - realNow()));
    armed = { at: next, timer };
  };

  function fire(): void {
    armed = undefined;
    const t = realNow();
    while (heap.length > 0 && (heap[0] as number) <= t) {
      const at = pop() as number;
      const list = slots.get(at);
      slots.delete(at);
      if (!list) continue;
      // While a slot fires, now() is the slot's time. A periodic timer re-armed from its callback
      // ("next = this start + interval") then keeps its phase after the event loop stalled, instead
      // of every device that was due during the stall sampling, sealing and publishing in the same
      // instant from then on (the bursts a 10,000-device run showed). Continuations (promises)
      // run after the slot and see the real time, so reading timestamps stay real.
      firing = at;
      for (const e of list) {
        const fn = e.fn;
        if (!fn) continue;
        e.fn = undefined;
        pending -= 1;
        try {
          fn();
        } catch (err) {
          // A timer callback that throws must not starve the others in its slot.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
      firing = undefined;
    }
    arm();
  }

  return {
    now,
    setTimeout(fn, ms) {
      const entry: Entry = { fn };
      if (closed) return entry;
      let at = Math.ceil((now() + Math.max(0, ms)) / res) * res;
      // A zero-delay timer set while its slot fires goes to the next slot (no endless slot).
      if (firing !== undefined && at <= firing) at = firing + res;
      let list = slots.get(at);
      if (!list) {
        list = [];
        slots.set(at, list);
        push(at);
      }
      list.push(entry);
      pending += 1;
      if (!armed || armed.at > at) arm();
      return entry as TimerHandle;
    },
    clearTimeout(handle) {
      const e = handle as Entry;
      if (e.fn) {
        e.fn = undefined;
        pending -= 1;
      }
    },
    get pending() {
      return pending;
    },
    close() {
      closed = true;
      if (armed) clearTimeout(armed.timer);
      armed = undefined;
      slots.clear();
      heap.length = 0;
      pending = 0;
    },
  };
}
