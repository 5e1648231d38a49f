import { join } from 'node:path';
import type { JobsClock } from '../../src/jobs/clock.js';
import type { DeviceJobExecution, JobExecutionSummary, JobsNotifications } from '../../src/jobs/device-api.js';

/**
 * What the jobs service tests share: a virtual clock the test moves (rollout minutes, timeouts),
 * and a notifications sink that records what the service told each thing.
 */

export interface VirtualJobsClock extends JobsClock {
  /** Moves time forward by `ms`, firing each timer that falls due at its own time, in order. */
  advance(ms: number): void;
  pending(): number;
}

export function virtualJobsClock(start = Date.UTC(2026, 0, 1)): VirtualJobsClock {
  let now = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const due = (limit: number) => {
    let best: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of timers) {
      if (entry[1].at <= limit && (best === undefined || entry[1].at < best[1].at)) best = entry;
    }
    return best;
  };
  return {
    now: () => now,
    setTimeout(fn, ms) {
      seq += 1;
      timers.set(seq, { at: now + Math.max(0, ms), fn });
      return seq;
    },
    clearTimeout(handle) {
      if (typeof handle === 'number') timers.delete(handle);
    },
    advance(ms) {
      const target = now + ms;
      for (let t = due(target); t !== undefined; t = due(target)) {
        timers.delete(t[0]);
        now = Math.max(now, t[1].at);
        t[1].fn();
      }
      now = target;
    },
    pending: () => timers.size,
  };
}

export interface RecordedNotification {
  readonly kind: 'notify' | 'notify-next';
  readonly thingName: string;
  readonly jobs?: Partial<Record<'QUEUED' | 'IN_PROGRESS', readonly JobExecutionSummary[]>>;
  readonly execution?: DeviceJobExecution | undefined;
  readonly at: number;
}

export function recordingSink(): JobsNotifications & {
  readonly seen: RecordedNotification[];
  of(thingName: string): RecordedNotification[];
  clear(): void;
} {
  const seen: RecordedNotification[] = [];
  return {
    seen,
    executionsChanged(thingName, jobs, at) {
      seen.push({ kind: 'notify', thingName, jobs, at });
    },
    nextChanged(thingName, execution, at) {
      seen.push({ kind: 'notify-next', thingName, execution, at });
    },
    of: (thingName) => seen.filter((n) => n.thingName === thingName),
    clear() {
      seen.length = 0;
    },
  };
}

export const jobsFile = (dir: string, n: number) => join(dir, `jobs-${n}.sqlite`);
