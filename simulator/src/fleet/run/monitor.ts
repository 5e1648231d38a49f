import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { HostSnapshot } from '../host.js';
import type { HostPool } from '../pool.js';
import type { SeriesPoint } from '../result.js';
import { type CpuMs, type MonitorReading, seriesPoint, total } from '../summary.js';

/** The event-loop delay histogram's resolution, ms (also what a loop that is never late reads). */
const EVENT_LOOP_RESOLUTION_MS = 10;

/**
 * Watches a phase once a second: the hosts' counters, CPU and RSS of this process and of the
 * device hosts, this process's event-loop delay. Keeps the series and the hosts' latest snapshot,
 * and prints the progress line.
 */
export interface PhaseMonitor {
  readonly series: readonly SeriesPoint[];
  /** The hosts' latest snapshot (taken by the monitor or by `refresh`). */
  readonly latest: readonly HostSnapshot[];
  /** Takes a snapshot of the hosts now and keeps it as `latest`. */
  refresh(): Promise<readonly HostSnapshot[]>;
  cpuNow(hosts: readonly HostSnapshot[]): CpuMs;
  /** RSS of the device-host processes together (0 when inline). */
  fleetRss(hosts: readonly HostSnapshot[]): number;
  readonly rssMaxBytes: number;
  readonly fleetRssMaxBytes: number;
  eventLoop(): { p50Ns: number; p99Ns: number; maxNs: number; resolutionMs: number };
  /** Stops the per-second samples and waits for one under way. */
  stop(): Promise<void>;
  /** Stops the samples without waiting (error path) and releases the event-loop histogram. */
  close(): void;
}

export function startPhaseMonitor(opts: {
  readonly name: string;
  readonly pool: HostPool;
  readonly devices: number;
  readonly t0: number;
  readonly say: (line: string, final: boolean) => void;
}): PhaseMonitor {
  const { pool, t0 } = opts;
  const inline = pool.mode === 'inline';
  const loop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  loop.enable();
  const series: SeriesPoint[] = [];
  const cpuNow = (hosts: readonly HostSnapshot[]): CpuMs => {
    const u = process.cpuUsage();
    return { mainMs: (u.user + u.system) / 1000, otherMs: inline ? 0 : total(hosts, (h) => h.processCpuMicros) / 1000 };
  };
  const fleetRss = (hosts: readonly HostSnapshot[]) => (inline ? 0 : total(hosts, (h) => h.processRssBytes));
  let last: MonitorReading = { at: t0, cpu: cpuNow([]), generated: 0, published: 0 };
  let latest: readonly HostSnapshot[] = [];
  let rssMax = 0;
  let fleetRssMax = 0;
  let sampling = false;

  const sampleOnce = async () => {
    latest = await pool.snapshot();
    const now: MonitorReading = {
      at: Date.now(),
      cpu: cpuNow(latest),
      generated: total(latest, (s) => s.generated),
      published: total(latest, (s) => s.published),
    };
    const rssBytes = process.memoryUsage().rss;
    const fleetRssBytes = fleetRss(latest);
    rssMax = Math.max(rssMax, rssBytes);
    fleetRssMax = Math.max(fleetRssMax, fleetRssBytes);
    const p = seriesPoint(t0, last, { ...now, connected: total(latest, (s) => s.connected), rssBytes, fleetRssBytes });
    series.push(p);
    last = now;
    opts.say(
      `[${opts.name}] ${p.t.toFixed(0)}s connected ${p.connected}/${opts.devices}  generated ${now.generated}  published ${now.published} (${p.publishedPerS}/s)  core ${p.coreCpuPct}% fleet ${p.fleetCpuPct}%  rss ${p.rssMB} MB`,
      false,
    );
  };
  const sample = async () => {
    if (sampling) return;
    sampling = true;
    try {
      await sampleOnce();
    } finally {
      sampling = false;
    }
  };
  const ticker = setInterval(() => void sample().catch(() => undefined), 1_000);

  return {
    series,
    get latest() {
      return latest;
    },
    async refresh() {
      latest = await pool.snapshot();
      return latest;
    },
    cpuNow,
    fleetRss,
    get rssMaxBytes() {
      return rssMax;
    },
    get fleetRssMaxBytes() {
      return fleetRssMax;
    },
    eventLoop: () => ({
      p50Ns: loop.percentile(50),
      p99Ns: loop.percentile(99),
      maxNs: loop.max,
      resolutionMs: EVENT_LOOP_RESOLUTION_MS,
    }),
    async stop() {
      clearInterval(ticker);
      while (sampling) await new Promise((r) => setTimeout(r, 20));
    },
    close() {
      clearInterval(ticker);
      loop.disable();
    },
  };
}
