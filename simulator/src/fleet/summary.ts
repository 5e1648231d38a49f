import type { CommandLoadResult } from './command-load.js';
import type { HostFinal, HostSnapshot } from './host.js';
import { logHistogram, quantiles, round } from './metrics.js';
import type { FleetOptions } from './options.js';
import {
  type FaultOutcome,
  FLEET_RESULT_VERSION,
  type FleetResult,
  type PhaseResult,
  type SeriesPoint,
} from './result.js';

/**
 * The numbers of a fleet run, computed from what the run collected: counters of the device
 * hosts, the per-second series, what was read back from the store, latency samples, CPU and
 * memory readings. Pure: no I/O, no clock; every time is an argument.
 */

const MB = 1024 * 1024;

/** Sum of one counter over the hosts' snapshots. */
export const total = <S extends HostSnapshot>(xs: readonly S[], f: (s: S) => number): number =>
  xs.reduce((a, s) => a + f(s), 0);

/** CPU time so far, ms: this process (the local IoT Core, plus the devices when inline) and the device-host processes. */
export interface CpuMs {
  readonly mainMs: number;
  readonly otherMs: number;
}

/** One reading of the per-second monitor. */
export interface MonitorReading {
  /** Epoch ms. */
  readonly at: number;
  readonly cpu: CpuMs;
  /** Readings generated and published so far (summed over the hosts). */
  readonly generated: number;
  readonly published: number;
}

/** The series point between two monitor readings (rates per second over the time between them). */
export function seriesPoint(
  t0: number,
  last: MonitorReading,
  now: MonitorReading & { readonly connected: number; readonly rssBytes: number; readonly fleetRssBytes: number },
): SeriesPoint {
  const dt = Math.max(1, now.at - last.at);
  return {
    t: round((now.at - t0) / 1000, 1),
    connected: now.connected,
    generatedPerS: Math.round(((now.generated - last.generated) * 1000) / dt),
    publishedPerS: Math.round(((now.published - last.published) * 1000) / dt),
    storedPerS: 0,
    coreCpuPct: round(((now.cpu.mainMs - last.cpu.mainMs) * 100) / dt),
    fleetCpuPct: round(((now.cpu.otherMs - last.cpu.otherMs) * 100) / dt),
    rssMB: Math.round(now.rssBytes / MB),
    fleetRssMB: Math.round(now.fleetRssBytes / MB),
  };
}

/** What the phase read back as stored (or, for the bare broker, delivered). */
export interface StoredCount {
  readonly readings: number;
  readonly batches: number;
  readonly via: string;
}

/** Latency samples read back for the phase, ms, and what "stored" means for it. */
export interface LatencySamples {
  readonly sampleToStoredMs: readonly number[] | Float64Array;
  readonly sealedToStoredMs: readonly number[] | Float64Array;
  /** Each batch's seal time (ms since the epoch), parallel to `sealedToStoredMs`; absent: unknown. */
  readonly sealedAtMs?: readonly number[] | Float64Array;
  readonly endpoint: string;
  readonly sampledThings: number;
  /** Readings stored per epoch second, when the read back knows them. */
  readonly storedPerSecond?: ReadonlyMap<number, number>;
}

/** Everything one phase collected, as the phase steps hand it over. */
export interface PhaseObservations {
  readonly name: PhaseResult['name'];
  readonly devices: number;
  readonly deviceHosts: PhaseResult['deviceHosts'];
  /** Epoch ms: phase start, ramp end, end of the measured window, agents stopped, read back done. */
  readonly times: Readonly<Record<'t0' | 'rampEnd' | 'measureEnd' | 'stoppedAt' | 'drainedAt', number>>;
  readonly series: readonly SeriesPoint[];
  /** The hosts' last snapshot before they stopped. */
  readonly latest: readonly HostSnapshot[];
  readonly finals: readonly HostFinal[];
  readonly stored: StoredCount;
  readonly latency: LatencySamples;
  readonly commands: CommandLoadResult | undefined;
  /** CPU at the ramp end and at the end of the measured window. */
  readonly cpu: { readonly start: CpuMs; readonly end: CpuMs };
  /** This process's RSS (max, at the end) and the device-host processes' together (0 when inline). */
  readonly memory: Readonly<Record<'rssMaxBytes' | 'rssEndBytes' | 'fleetRssMaxBytes' | 'fleetRssEndBytes', number>>;
  /** This process's event-loop delay histogram (perf_hooks, ns) and its resolution, ms. */
  readonly coreEventLoop: Readonly<Record<'p50Ns' | 'p99Ns' | 'maxNs' | 'resolutionMs', number>>;
  readonly faults: readonly FaultOutcome[];
  /** Things whose sensors the sensor-failure fault broke. */
  readonly failedThings: readonly string[];
  /** The core's breaches during the phase (`throttlesBetween`); undefined: not available (AWS, bare broker). */
  readonly coreThrottles?: Exclude<PhaseResult['throttled']['core'], 'not available'> | undefined;
}

/**
 * monitorEventLoopDelay's histogram counts the timer's own resolution as delay: a loop that is
 * never late reads `resolutionMs`. The lag is what comes on top of it.
 */
const lagMs = (ns: number, resolutionMs: number) => round(Math.max(0, ns / 1e6 - resolutionMs), 2);

const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);

/** A phase's result from what it collected. */
export function summarizePhase(p: PhaseObservations): PhaseResult {
  const { t0, rampEnd, measureEnd, stoppedAt, drainedAt } = p.times;
  const { finals } = p;
  const perSecond = p.latency.storedPerSecond;
  const series = p.series.map((s) => ({
    ...s,
    storedPerS: perSecond?.get(Math.floor((t0 + s.t * 1000) / 1000)) ?? 0,
  }));
  const generated = total(finals, (f) => f.agentReadings);
  const published = total(finals, (s) => s.published);
  const measuredS = Math.max(0.001, (measureEnd - rampEnd) / 1000);
  const firstSum = total(finals, (s) => s.firstConnectMs.sum);
  const firstCount = total(finals, (s) => s.firstConnectMs.count);
  const lastFirst = Math.max(...finals.map((f) => f.lastFirstConnectAt));
  const connectSeconds = Math.max(0.001, (lastFirst - t0) / 1000);
  const everConnected = total(finals, (s) => s.everConnected);
  // Rates over the measured window only: the ramp and the drain would dilute them.
  const measured = series.filter((s) => s.t * 1000 >= rampEnd - t0 && s.t * 1000 <= measureEnd - t0);
  const unhealthy = new Set(finals.flatMap((f) => f.reportedUnhealthy));
  const failed = new Set(p.failedThings);
  const { cpu, memory, commands } = p;
  return {
    name: p.name,
    deviceHosts: p.deviceHosts,
    devices: p.devices,
    connect: {
      everConnected,
      connectedAtEnd: total(p.latest, (s) => s.connected),
      maxConnected: Math.max(0, ...series.map((s) => s.connected)),
      seconds: round(connectSeconds, 2),
      perSecond: round(everConnected / connectSeconds),
      firstConnectMeanMs: firstCount ? round(firstSum / firstCount) : 0,
      firstConnectMaxMs: Math.max(0, ...finals.map((f) => f.firstConnectMs.max)),
      connectFailures: total(finals, (s) => s.connectFailures),
      reconnects: total(finals, (s) => s.reconnects),
      interruptions: total(finals, (s) => s.interruptions),
    },
    telemetry: {
      generated,
      published,
      publishedBatches: total(finals, (s) => s.publishedBatches),
      stored: p.stored.readings,
      storedBatches: p.stored.batches,
      storedVia: p.stored.via,
      lost: generated - p.stored.readings,
      droppedByOutbox: total(finals, (s) => s.dropped),
      unsentAtStop: total(finals, (f) => f.leftInOutbox.readings),
      generatedPerS: round(mean(measured.map((s) => s.generatedPerS))),
      publishedPerS: round(mean(measured.map((s) => s.publishedPerS))),
      publishedBytes: total(finals, (s) => s.publishedBytes),
    },
    latency: {
      sampleToStoredMs: quantiles(p.latency.sampleToStoredMs),
      sealedToStoredMs: quantiles(p.latency.sealedToStoredMs),
      sealedToStoredMeasuredMs: quantiles(sealedWithin(p.latency, rampEnd, measureEnd)),
      sampleToStoredHistogram: logHistogram(p.latency.sampleToStoredMs),
      sealedToStoredHistogram: logHistogram(p.latency.sealedToStoredMs),
      sampledThings: p.latency.sampledThings,
      endpoint: p.latency.endpoint,
    },
    commands: commands ? (({ roundTripSamples: _s, ...rest }) => rest)(commands) : undefined,
    commandRoundTripHistogram: commands ? logHistogram(commands.roundTripSamples) : undefined,
    resources: {
      coreCpuPct: round(((cpu.end.mainMs - cpu.start.mainMs) * 100) / (measuredS * 1000)),
      fleetCpuPct: round(((cpu.end.otherMs - cpu.start.otherMs) * 100) / (measuredS * 1000)),
      cpuSplit:
        p.deviceHosts.mode === 'inline'
          ? 'one process: core and devices together (devices inline)'
          : 'core = this process; fleet = the device-host processes',
      coreRssMaxMB: Math.round(memory.rssMaxBytes / MB),
      coreRssEndMB: Math.round(memory.rssEndBytes / MB),
      fleetRssMaxMB: Math.round(memory.fleetRssMaxBytes / MB),
      fleetRssEndMB: Math.round(memory.fleetRssEndBytes / MB),
      coreEventLoop: {
        p50Ms: lagMs(p.coreEventLoop.p50Ns, p.coreEventLoop.resolutionMs),
        p99Ms: lagMs(p.coreEventLoop.p99Ns, p.coreEventLoop.resolutionMs),
        maxMs: lagMs(p.coreEventLoop.maxNs, p.coreEventLoop.resolutionMs),
      },
      hostEventLoop: finals.map((f) => f.eventLoop),
      hostHeapUsedMB: finals.map((f) => Math.round(f.heapUsedBytes / MB)),
    },
    faults: p.faults,
    throttled: {
      devices: {
        publishes: total(finals, (f) => f.throttled.publishes),
        unacknowledged: total(finals, (f) => f.throttled.unacknowledged),
        connects: total(finals, (f) => f.throttled.connects),
        shadow: total(finals, (f) => f.throttled.shadow),
      },
      core: p.coreThrottles ?? 'not available',
    },
    ...(p.failedThings.length > 0
      ? {
          sensorFailure: {
            failedDevices: p.failedThings.length,
            reportedUnhealthy: unhealthy.size,
            reportedUnhealthyAmongFailed: [...unhealthy].filter((t) => failed.has(t)).length,
            reportedUnhealthyAmongHealthy: [...unhealthy].filter((t) => !failed.has(t)).length,
          },
        }
      : {}),
    windows: {
      rampS: round((rampEnd - t0) / 1000, 2),
      measuredS: round(measuredS, 2),
      drainS: round((drainedAt - stoppedAt) / 1000, 2),
    },
    series,
  };
}

/** The provisioning figures of a run. */
export function provisioningSummary(
  seconds: number,
  devices: number,
  keyType: string,
  dataDir: string,
): NonNullable<FleetResult['provisioning']> {
  return {
    seconds: round(seconds, 2),
    perDeviceMs: round((seconds * 1000) / devices, 2),
    keyType,
    dataDir,
  };
}

/** What a run hands to its summary besides its phases. */
export interface RunObservations {
  readonly runId: string;
  readonly startedAt: string;
  readonly options: FleetOptions;
  readonly machine: FleetResult['machine'];
  readonly provisioning: FleetResult['provisioning'];
  readonly phases: readonly PhaseResult[];
  readonly cleanup: FleetResult['cleanup'];
}

/** The run's result: its phases, the local core's overhead over the bare broker (when both ran), and the verdict. */
export function summarizeRun(r: RunObservations): FleetResult {
  const core = r.phases.find((p) => p.name === 'local-core');
  const bare = r.phases.find((p) => p.name === 'bare-broker');
  const cpu = (p: PhaseResult) => p.resources.coreCpuPct;
  return {
    version: FLEET_RESULT_VERSION,
    runId: r.runId,
    startedAt: r.startedAt,
    options: r.options,
    machine: r.machine,
    provisioning: r.provisioning,
    phases: r.phases,
    // The floors keep a near-idle baseline from turning a ratio into infinity.
    ...(core && bare
      ? {
          overhead: {
            coreCpuRatio: round(cpu(core) / Math.max(0.1, cpu(bare)), 2),
            connectRateRatio: round(core.connect.perSecond / Math.max(0.001, bare.connect.perSecond), 3),
            sealedToStoredP99VsBrokerP99:
              core.latency.sealedToStoredMs && bare.latency.sealedToStoredMs
                ? round(core.latency.sealedToStoredMs.p99 / Math.max(0.1, bare.latency.sealedToStoredMs.p99), 2)
                : undefined,
          },
        }
      : {}),
    cleanup: r.cleanup,
    zeroLoss: r.phases.every((p) => p.telemetry.lost === 0),
  };
}

/** Sealed → stored of the batches sealed in [from, to): the measured window without the ramp. */
export function sealedWithin(latency: LatencySamples, from: number, to: number): number[] {
  const at = latency.sealedAtMs;
  if (at === undefined) return [];
  const out: number[] = [];
  const n = Math.min(at.length, latency.sealedToStoredMs.length);
  for (let i = 0; i < n; i++) {
    const t = at[i] as number;
    if (t >= from && t < to) out.push(latency.sealedToStoredMs[i] as number);
  }
  return out;
}
