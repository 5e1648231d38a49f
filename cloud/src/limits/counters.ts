import type { Logger } from '../logger.js';
import { QUOTA_NAMES, type QuotaName } from './quotas.js';

/**
 * How often each quota was breached since the core started, for the log, the console, the
 * `GET /quotas` endpoint (routes.ts) and the fleet report's "throttled" counts.
 *
 * Logging a line per breach would let one misbehaving client flood the log at the very rate it is
 * being throttled for, so the first breach of a quota logs at once and later ones are summed into
 * one line per quota per `logIntervalMs` while breaches continue.
 */
export interface ThrottleCounters {
  /** Counts one breach of `quota`; `subject` (a client id, thing, operation) goes in the log line. */
  hit(quota: QuotaName, subject?: string): void;
  /** Breaches per quota since start (every quota, zeros included). */
  snapshot(): Readonly<Record<QuotaName, number>>;
  /** The sum over every quota. */
  total(): number;
  /** Flushes pending summary lines and stops the timer. */
  close(): void;
}

export interface ThrottleCountersOptions {
  readonly logger: Logger;
  /** How often repeated breaches are summarised, per quota. Default 10 s. */
  readonly logIntervalMs?: number;
}

interface Pending {
  count: number;
  subjects: Set<string>;
}

/** At most this many subjects are named in one summary line. */
const SUBJECTS_PER_LINE = 5;

export function createThrottleCounters(options: ThrottleCountersOptions): ThrottleCounters {
  const log = options.logger;
  const intervalMs = options.logIntervalMs ?? 10_000;
  const counts = Object.fromEntries(QUOTA_NAMES.map((n) => [n, 0])) as Record<QuotaName, number>;
  const pending = new Map<QuotaName, Pending>();
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    for (const [quota, p] of pending) {
      log.warn(
        { quota, throttled: p.count, total: counts[quota], subjects: [...p.subjects] },
        `quota exceeded: ${quota} (${p.count} more in the last ${Math.round(intervalMs / 1000)} s)`,
      );
    }
    pending.clear();
    timer = undefined;
  };

  return {
    hit(quota, subject) {
      counts[quota] += 1;
      if (counts[quota] === 1) {
        log.warn({ quota, subject, total: 1 }, `quota exceeded: ${quota}`);
        return;
      }
      let p = pending.get(quota);
      if (!p) {
        p = { count: 0, subjects: new Set() };
        pending.set(quota, p);
      }
      p.count += 1;
      if (subject !== undefined && p.subjects.size < SUBJECTS_PER_LINE) p.subjects.add(subject);
      if (!timer) {
        timer = setTimeout(flush, intervalMs);
        timer.unref();
      }
    },
    snapshot() {
      return Object.freeze({ ...counts });
    },
    total() {
      let sum = 0;
      for (const n of QUOTA_NAMES) sum += counts[n];
      return sum;
    },
    close() {
      if (timer) clearTimeout(timer);
      flush();
    },
  };
}
