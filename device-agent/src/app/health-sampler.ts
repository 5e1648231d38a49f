import type { HealthReport } from '@pifleet/protocol';
import { buildHealth, type LinkStats, significantChange } from '../core/health.js';
import type { Logger } from '../logger.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { HostSample, HostStats } from '../ports/host-stats.js';

export interface HealthSamplerDeps {
  readonly clock: Clock;
  /** Time between samples (`health.intervalSeconds` × 1000), more than 0. */
  readonly intervalMs: number;
  /** The device's counters; absent, the health holds the connection's numbers only. */
  readonly hostStats?: HostStats | undefined;
  /** The connection's numbers at the moment of a sample. */
  readonly link: () => LinkStats;
  /**
   * A sample moved enough from what the shadow last accepted to be reported at once (`reason`: the
   * path that moved). The owner sends a report, which carries `unreported()`.
   */
  readonly onSignificant: (reason: string) => void;
  readonly logger: Logger;
}

export interface HealthSampler {
  /** Takes the first host sample (the baseline of the CPU percentages) and starts the timer. */
  start(): void;
  stop(): void;
  /** Samples now, as the timer does; resolves with the sample. */
  sampleNow(): Promise<HealthReport>;
  /** The newest sample, when the shadow has not accepted it yet: it goes with the next report. */
  unreported(): HealthReport | undefined;
  /** The shadow accepted a report that carried `health`. */
  reported(health: HealthReport): void;
  /** The newest sample (undefined before the first). */
  latest(): HealthReport | undefined;
}

/**
 * Samples the agent's health every `intervalMs` on the injected clock and decides which samples are
 * worth a shadow update of their own (`core/health.ts`: rounding and thresholds). The others are
 * kept as `unreported()` and go with whatever report the agent sends next, so a device whose health
 * is steady costs no shadow update beyond its periodic report.
 */
export function createHealthSampler(deps: HealthSamplerDeps): HealthSampler {
  const { clock, logger: log } = deps;
  let previousHost: HostSample | undefined;
  let latest: HealthReport | undefined;
  let lastReported: HealthReport | undefined;
  let timer: TimerHandle | undefined;
  let running = false;
  let failures = 0;

  const readHost = async (): Promise<HostSample | undefined> => {
    if (!deps.hostStats) return undefined;
    try {
      return await deps.hostStats.sample();
    } catch (err) {
      // The port promises not to reject; one that does costs the host fields of this sample only.
      failures += 1;
      if (failures === 1 || failures % 100 === 0) log.warn({ err, failures }, 'host stats sample failed');
      return undefined;
    }
  };

  const sampleNow = async (): Promise<HealthReport> => {
    // The time and the connection's numbers of the moment the sample is due, not of when the
    // files have been read.
    const now = clock.now();
    const link = deps.link();
    const current = await readHost();
    const health = buildHealth({ now, previous: previousHost, current, link });
    if (current) previousHost = current;
    latest = health;
    const reason = significantChange(lastReported, health);
    if (reason !== undefined && running) {
      log.debug({ reason }, 'health changed; reporting');
      deps.onSignificant(reason);
    }
    return health;
  };

  /**
   * Fixed rate: each sample is due one interval after the previous one was, however long reading
   * the files took, so samples stay a whole number of intervals from the start.
   */
  const arm = (dueAt: number) => {
    if (!running) return;
    timer = clock.setTimeout(
      () => {
        timer = undefined;
        void sampleNow().finally(() => arm(dueAt + deps.intervalMs));
      },
      Math.max(0, dueAt - clock.now()),
    );
  };

  return {
    start() {
      if (running) return;
      running = true;
      void readHost().then((host) => {
        previousHost ??= host;
      });
      arm(clock.now() + deps.intervalMs);
    },
    stop() {
      running = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
    sampleNow,
    unreported: () => (latest !== undefined && latest !== lastReported ? latest : undefined),
    reported(health) {
      lastReported = health;
    },
    latest: () => latest,
  };
}
