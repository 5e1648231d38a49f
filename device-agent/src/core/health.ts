import { HEALTH_BOUNDS, type HealthReport } from '@pifleet/protocol';
import type { HostSample } from '../ports/host-stats.js';
import type { LatencySummary } from './latency-window.js';

/** What the agent knows about its MQTT connection at a sample. */
export interface LinkStats {
  /** Connections made again after the first, since the agent started. */
  readonly reconnects: number;
  /** When the current connection came up (clock ms); undefined while disconnected. */
  readonly connectedSince?: number | undefined;
  /** PUBLISH→PUBACK latencies of telemetry batches; undefined until the first acknowledgement. */
  readonly latency?: LatencySummary | undefined;
}

export interface HealthInput {
  /** Clock time of this sample, ms. */
  readonly now: number;
  /** The host sample before this one (CPU percentages need two). */
  readonly previous?: HostSample | undefined;
  readonly current?: HostSample | undefined;
  readonly link: LinkStats;
}

const MIB = 1024 * 1024;

/**
 * Rounding of what goes into `reported.health`. Every shadow update is billed (per 1 KB) and counts
 * against the thing's request quota, and a value's resolution decides how often it "changes":
 * - host CPU in whole percent: between two samples a minute apart an idle Pi moves by a few points
 *   from cron, journald and the agent itself; decimals would only be noise;
 * - the agent's CPU to 0.1 %: it is a share of all cores, and the agent's normal share is below 1 %
 *   (0.3 % of one core measured on the deployed agent, under 0.1 % of a 4-core Pi), which a whole
 *   percent would show as 0;
 * - memory in MiB (the kernel counts in kB; a MiB is far below what matters on a 1–8 GiB Pi);
 * - temperature in whole °C: the Pi's sensor steps by about 0.5 °C and jitters by as much between
 *   reads, and what the operator acts on is the distance to throttling (80 °C on a Pi 4, 85 °C on a
 *   Pi 5);
 * - load averages to 0.01, as the kernel writes them; latencies to the ms; uptimes to the second.
 */
export function buildHealth(input: HealthInput): HealthReport {
  const { now, previous, current, link } = input;
  const report: {
    sampledAt: number;
    host?: NonNullable<HealthReport['host']>;
    process?: NonNullable<HealthReport['process']>;
    connection: HealthReport['connection'];
  } = {
    sampledAt: Math.max(0, Math.floor(now)),
    connection: { reconnects: link.reconnects },
  };

  if (current) {
    const host: { -readonly [K in keyof NonNullable<HealthReport['host']>]?: number } = {};
    const dTotal = previous?.cpu && current.cpu ? current.cpu.total - previous.cpu.total : 0;
    if (previous?.cpu && current.cpu && dTotal > 0) {
      host.cpuPct = clampPct(Math.round(((current.cpu.busy - previous.cpu.busy) / dTotal) * 100));
    }
    if (current.load) {
      const load = (v: number) => inRange(round(v, 2), 0, HEALTH_BOUNDS.loadMax);
      setIf(host, 'load1', load(current.load.one));
      setIf(host, 'load5', load(current.load.five));
      setIf(host, 'load15', load(current.load.fifteen));
    }
    const total = mib(current.memTotalBytes);
    const available = mib(current.memAvailableBytes);
    setIf(host, 'memTotalMiB', total);
    if (available !== undefined && (total === undefined || available <= total)) host.memAvailableMiB = available;
    if (current.socTempMilliC !== undefined) {
      setIf(
        host,
        'tempC',
        inRange(Math.round(current.socTempMilliC / 1000), HEALTH_BOUNDS.tempC.min, HEALTH_BOUNDS.tempC.max),
      );
    }
    if (current.uptimeS !== undefined) setIf(host, 'uptimeS', inRange(Math.floor(current.uptimeS), 0));
    if (Object.keys(host).length > 0) report.host = host;

    const proc: { cpuPct?: number; rssMiB?: number } = {};
    const dProc =
      previous?.processCpuTicks !== undefined && current.processCpuTicks !== undefined
        ? current.processCpuTicks - previous.processCpuTicks
        : undefined;
    // In the same ticks as /proc/stat's totals, so the share needs no clock and no USER_HZ.
    if (dProc !== undefined && dProc >= 0 && dTotal > 0) proc.cpuPct = clampPct(round((dProc / dTotal) * 100, 1));
    setIf(proc, 'rssMiB', mib(current.processRssBytes));
    if (Object.keys(proc).length > 0) report.process = proc;
  }

  if (link.connectedSince !== undefined) {
    report.connection.connectedS = Math.max(0, Math.floor((now - link.connectedSince) / 1000));
  }
  if (link.latency) {
    const ms = (v: number) => Math.min(HEALTH_BOUNDS.latencyMsMax, Math.max(0, Math.round(v)));
    report.connection.publishLatencyMs = {
      last: ms(link.latency.last),
      p50: ms(link.latency.p50),
      p99: ms(link.latency.p99),
      samples: Math.min(HEALTH_BOUNDS.latencyWindow, Math.max(1, link.latency.samples)),
    };
  }
  return report;
}

/**
 * How much a value must move, from the one the shadow last accepted, for a sample to be worth a
 * shadow update of its own. Below these a sample waits for the agent's next report (the periodic one
 * every `shadow.reportIntervalMs`, 5 min by default, or any other) and rides along with it for no
 * extra message. Each is well past the minute-to-minute noise of an idle Pi and well inside what an
 * operator would want to see at once.
 */
export const HEALTH_THRESHOLDS = {
  /** Host CPU, percentage points: a sustained load change, not a cron job. */
  hostCpuPct: 10,
  /** The agent's CPU, percentage points of the whole device: several times its normal share. */
  processCpuPct: 5,
  /** Available memory, as a share of the total (~400 MiB on a 4 GiB Pi). */
  memAvailableShareOfTotal: 0.1,
  /** The agent's RSS: a fifth more or less, and at least 8 MiB (a slow leak shows in steps). */
  rssShare: 0.2,
  rssMinMiB: 8,
  /** SoC temperature, °C. */
  tempC: 5,
  /** One-minute load: a whole core's worth of runnable tasks. */
  load1: 1,
  /** Median or p99 latency: half again (or half less), and at least 20 ms. */
  latencyShare: 0.5,
  latencyMinMs: 20,
} as const;

/**
 * Why `after` deserves a shadow update of its own compared with `before` (the health the shadow
 * last accepted), as the path of the first value that moved enough; undefined when it can wait.
 * Times that only grow (`sampledAt`, uptimes) and the single latest latency never count; a value
 * appearing or going away does (a thermal zone read for the first time, the first acknowledgement).
 */
export function significantChange(before: HealthReport | undefined, after: HealthReport): string | undefined {
  if (!before) return 'first sample';
  const T = HEALTH_THRESHOLDS;
  if (after.connection.reconnects !== before.connection.reconnects) return 'connection.reconnects';
  const checks: [string, number | undefined, number | undefined, (a: number, b: number) => boolean][] = [
    ['host.cpuPct', before.host?.cpuPct, after.host?.cpuPct, (a, b) => movedBy(a, b, T.hostCpuPct)],
    ['process.cpuPct', before.process?.cpuPct, after.process?.cpuPct, (a, b) => movedBy(a, b, T.processCpuPct)],
    [
      'host.memAvailableMiB',
      before.host?.memAvailableMiB,
      after.host?.memAvailableMiB,
      (a, b) => movedBy(a, b, T.memAvailableShareOfTotal * (after.host?.memTotalMiB ?? Math.max(a, b))),
    ],
    [
      'process.rssMiB',
      before.process?.rssMiB,
      after.process?.rssMiB,
      (a, b) => movedBy(a, b, Math.max(T.rssMinMiB, T.rssShare * a)),
    ],
    ['host.tempC', before.host?.tempC, after.host?.tempC, (a, b) => movedBy(a, b, T.tempC)],
    ['host.load1', before.host?.load1, after.host?.load1, (a, b) => movedBy(a, b, T.load1)],
    [
      'connection.publishLatencyMs.p50',
      before.connection.publishLatencyMs?.p50,
      after.connection.publishLatencyMs?.p50,
      latencyMoved,
    ],
    [
      'connection.publishLatencyMs.p99',
      before.connection.publishLatencyMs?.p99,
      after.connection.publishLatencyMs?.p99,
      latencyMoved,
    ],
  ];
  for (const [path, a, b, moved] of checks) {
    if (a === undefined && b === undefined) continue;
    if (a === undefined || b === undefined) return path;
    if (moved(a, b)) return path;
  }
  return undefined;
}

function latencyMoved(a: number, b: number): boolean {
  const T = HEALTH_THRESHOLDS;
  return movedBy(a, b, Math.max(T.latencyMinMs, T.latencyShare * a));
}

/**
 * |b − a| ≥ threshold, with room for binary fractions: rounded to 0.1, 5.1 − 0.1 is
 * 4.999999999999999, which is the 5 points it reads as.
 */
function movedBy(a: number, b: number, threshold: number): boolean {
  return Math.abs(b - a) >= threshold - 1e-9;
}

const round = (v: number, decimals: number) => {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
};
const clampPct = (v: number) => Math.min(100, Math.max(0, v));
const inRange = (v: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  Number.isFinite(v) && v >= min && v <= max ? v : undefined;
const mib = (bytes: number | undefined) =>
  bytes === undefined ? undefined : inRange(Math.round(bytes / MIB), 0, HEALTH_BOUNDS.mibMax);

function setIf<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}
