import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { localCorePaths, openSqliteRegistry } from '@pifleet/cloud';
import {
  BUNDLE_FILES,
  fleetThingNames,
  LOCAL_PROFILE,
  parseSharedCredentials,
  resolveTarget,
  runCli,
  splitEndpoint,
} from '@pifleet/provisioning';
import { SimulatorError } from '../errors.js';
import { type ApiReadback, readBackViaQueryApi } from './api-readback.js';
import { type CommandApiTarget, type CommandLoadResult, createCommandLoad } from './command-load.js';
import type { HostDeviceSpec, HostEvent, HostFinal, HostSnapshot, TelemetryProfile } from './host.js';
import { type Histogram, logHistogram, type Quantiles, quantiles, round } from './metrics.js';
import type { FleetFault, FleetOptions } from './options.js';
import { createHostPool, type HostPool } from './pool.js';
import { deprovisionLocalFleet, type FleetIdentity, provisionLocalFleet } from './provision.js';
import { readStore } from './store-readback.js';
import { type BareBrokerTarget, type LocalTarget, startBareBroker, startLocalTarget } from './target.js';

export const FLEET_RESULT_VERSION = 1;

/** One sample per second of a phase. */
export interface SeriesPoint {
  /** Seconds since the phase started. */
  readonly t: number;
  readonly connected: number;
  readonly generatedPerS: number;
  readonly publishedPerS: number;
  /** Readings stored in that second (filled in from the store after the run). */
  storedPerS: number;
  /** Percent of one core over the last second: the main thread (local IoT Core) and every other thread (fleet). */
  readonly coreCpuPct: number;
  readonly fleetCpuPct: number;
  /** RSS of this process (the local IoT Core, plus the devices when inline) and of the device-host processes. */
  readonly rssMB: number;
  readonly fleetRssMB: number;
}

export interface FaultOutcome {
  readonly kind: FleetFault['kind'];
  /** Seconds since the phase started. */
  readonly atS: number;
  readonly affected: number;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface PhaseResult {
  readonly name: 'local-core' | 'bare-broker' | 'external-core' | 'aws';
  readonly deviceHosts: {
    readonly mode: HostPool['mode'];
    readonly hosts: number;
    /** Each device's MQTT client: `crt` (aws-iot-device-sdk-v2) or `mqtt` (mqtt.js). */
    readonly transport: 'crt' | 'mqtt';
  };
  readonly devices: number;
  readonly connect: {
    readonly everConnected: number;
    readonly connectedAtEnd: number;
    readonly maxConnected: number;
    /** First starts → last first CONNACK. */
    readonly seconds: number;
    readonly perSecond: number;
    readonly firstConnectMeanMs: number;
    readonly firstConnectMaxMs: number;
    readonly connectFailures: number;
    readonly reconnects: number;
    readonly interruptions: number;
  };
  readonly telemetry: {
    /** Readings sampled by the agents (agent.status().readings, summed). */
    readonly generated: number;
    /** Readings in batches the broker acknowledged (PUBACK). */
    readonly published: number;
    readonly publishedBatches: number;
    /** Readings read back from the telemetry store (deduplicated there); bare broker: delivered to its subscriber. */
    readonly stored: number;
    readonly storedBatches: number;
    readonly storedVia: string;
    /** generated − stored. */
    readonly lost: number;
    /** Of the lost: dropped by outbox bounds, and never acknowledged before the devices stopped. */
    readonly droppedByOutbox: number;
    readonly unsentAtStop: number;
    /** Readings per second over the measured window. */
    readonly generatedPerS: number;
    readonly publishedPerS: number;
    readonly publishedBytes: number;
  };
  readonly latency: {
    readonly sampleToStoredMs: Quantiles | undefined;
    readonly sealedToStoredMs: Quantiles | undefined;
    readonly sampleToStoredHistogram: Histogram;
    readonly sealedToStoredHistogram: Histogram;
    readonly sampledThings: number;
    /** What "stored" means for this phase. */
    readonly endpoint: string;
  };
  readonly commands: Omit<CommandLoadResult, 'roundTripSamples'> | undefined;
  readonly commandRoundTripHistogram: Histogram | undefined;
  readonly resources: {
    /** Measured window (ramp end → end of duration), percent of one core: this process, and the device hosts. */
    readonly coreCpuPct: number;
    readonly fleetCpuPct: number;
    readonly cpuSplit: string;
    /** This process: the local IoT Core (or bare broker), plus the devices when inline. */
    readonly coreRssMaxMB: number;
    readonly coreRssEndMB: number;
    /** The device-host processes together (0 when inline). */
    readonly fleetRssMaxMB: number;
    readonly fleetRssEndMB: number;
    readonly coreEventLoop: { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };
    readonly hostEventLoop: readonly HostSnapshot['eventLoop'][];
    readonly hostHeapUsedMB: readonly number[];
  };
  readonly faults: readonly FaultOutcome[];
  readonly sensorFailure?: {
    readonly failedDevices: number;
    readonly reportedUnhealthy: number;
    readonly reportedUnhealthyAmongFailed: number;
    readonly reportedUnhealthyAmongHealthy: number;
  };
  readonly windows: { readonly rampS: number; readonly measuredS: number; readonly drainS: number };
  readonly series: readonly SeriesPoint[];
}

export interface FleetResult {
  readonly version: typeof FLEET_RESULT_VERSION;
  readonly runId: string;
  readonly startedAt: string;
  readonly options: FleetOptions;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly node: string;
    readonly platform: string;
  };
  readonly provisioning:
    | { readonly seconds: number; readonly perDeviceMs: number; readonly keyType: string; readonly dataDir: string }
    | undefined;
  readonly phases: readonly PhaseResult[];
  /** local core ÷ bare broker, when both ran. */
  readonly overhead?: {
    readonly coreCpuRatio: number;
    readonly connectRateRatio: number;
    readonly sealedToStoredP99VsBrokerP99: number | undefined;
  };
  readonly cleanup: { readonly removed: number; readonly failed: number; readonly kept: boolean };
  /** true when every phase without faults lost nothing (and faulted phases lost nothing either). */
  readonly zeroLoss: boolean;
}

export interface FleetRunDeps {
  readonly options: FleetOptions;
  /** A progress line (live on a TTY: `final` false lines replace each other). */
  readonly progress?: (line: string, final: boolean) => void;
  readonly signal?: AbortSignal;
}

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Picks `fraction` of the names, spread evenly (deterministic). */
function pick<T>(items: readonly T[], fraction: number): T[] {
  const n = Math.max(1, Math.round(items.length * fraction));
  const step = items.length / n;
  return Array.from({ length: n }, (_, i) => items[Math.floor(i * step)] as T);
}

const sum = (xs: readonly HostSnapshot[], f: (s: HostSnapshot) => number) => xs.reduce((a, s) => a + f(s), 0);

interface PhaseTarget {
  readonly name: PhaseResult['name'];
  readonly endpoint: string;
  readonly port: number;
  readonly caFile: string;
  readonly shadow: boolean;
  readonly local?: LocalTarget;
  readonly bare?: BareBrokerTarget;
  readonly command?: CommandApiTarget;
  /** Reads back what the store holds for the run (local/external core). */
  readonly readBack?: () => ReturnType<typeof readStore>;
  readonly countStored?: (things: readonly string[]) => Promise<number>;
  /** Reads back through the telemetry query API (AWS: API Gateway → DynamoDB). */
  readonly readBackApi?: () => Promise<ApiReadback>;
  readonly faults: readonly FleetFault[];
}

/**
 * A fleet run: provisions the devices, runs them against the local IoT Core (and, with
 * `baseline`, against a bare broker), injects the faults, reads back what was stored and
 * returns every figure. Stops by itself; `signal` ends the measured window early.
 */
export function createFleetRunner(deps: FleetRunDeps) {
  const o = deps.options;
  const say = deps.progress ?? (() => undefined);
  const runId = randomBytes(3).toString('hex');
  const thingPrefix = `${o.prefix}-${runId}`;
  const names = Array.from({ length: o.devices }, (_, i) => `${thingPrefix}-${String(i + 1).padStart(5, '0')}`);

  async function runPhase(target: PhaseTarget, identities: readonly FleetIdentity[]): Promise<PhaseResult> {
    const names = identities.map((id) => id.thingName);
    const profile: TelemetryProfile = {
      sensors: o.sensors,
      intervalMs: o.intervalMs,
      batchReadings: o.batchReadings,
      batchAgeMs: o.batchAgeMs,
      shadow: target.shadow,
      reconnectMaxMs: o.reconnectMaxMs,
      transport: o.transport,
    };
    const specs: HostDeviceSpec[] = identities.map((id, i) => ({
      thingName: id.thingName,
      certFile: id.certFile,
      keyFile: id.keyFile,
      seed: `${o.seed}-${i}`,
    }));
    let commandLoad: ReturnType<typeof createCommandLoad> | undefined;
    const connected = new Set<string>();
    const ramped = new Set<number>();
    const pool = createHostPool({
      workers: o.workers,
      endpoint: target.endpoint,
      port: target.port,
      caFile: target.caFile,
      profile,
      devices: specs,
      rampPerSecond: o.rampPerSecond,
      onEvent: (e: HostEvent) => {
        if (e.type === 'ramped') ramped.add(e.hostId);
        else {
          connected.add(e.thingName);
          commandLoad?.observe(e.thingName, e.outputs, e.at);
        }
      },
    });
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const t0 = Date.now();
    const series: SeriesPoint[] = [];
    const inline = pool.mode === 'inline';
    /** CPU ms so far: this process (the local IoT Core, plus the devices when inline) and the device-host processes. */
    const cpuNow = (hosts: readonly HostSnapshot[]) => {
      const u = process.cpuUsage();
      return { mainMs: (u.user + u.system) / 1000, otherMs: inline ? 0 : sum(hosts, (h) => h.processCpuMicros) / 1000 };
    };
    let last = { at: t0, cpu: cpuNow([]), generated: 0, published: 0 };
    let latest: HostSnapshot[] = [];
    let rssMax = 0;
    let fleetRssMax = 0;
    let sampling = false;
    const sample = async () => {
      if (sampling) return;
      sampling = true;
      try {
        await sampleOnce();
      } finally {
        sampling = false;
      }
    };
    const sampleOnce = async () => {
      latest = await pool.snapshot();
      const now = Date.now();
      const cpu = cpuNow(latest);
      const dt = Math.max(1, now - last.at);
      const generated = sum(latest, (s) => s.generated);
      const published = sum(latest, (s) => s.published);
      const rss = process.memoryUsage().rss;
      const fleetRss = inline ? 0 : sum(latest, (h) => h.processRssBytes);
      rssMax = Math.max(rssMax, rss);
      fleetRssMax = Math.max(fleetRssMax, fleetRss);
      series.push({
        t: round((now - t0) / 1000, 1),
        connected: sum(latest, (s) => s.connected),
        generatedPerS: Math.round(((generated - last.generated) * 1000) / dt),
        publishedPerS: Math.round(((published - last.published) * 1000) / dt),
        storedPerS: 0,
        coreCpuPct: round(((cpu.mainMs - last.cpu.mainMs) * 100) / dt),
        fleetCpuPct: round(((cpu.otherMs - last.cpu.otherMs) * 100) / dt),
        rssMB: Math.round(rss / MB),
        fleetRssMB: Math.round(fleetRss / MB),
      });
      last = { at: now, cpu, generated, published };
      const p = series[series.length - 1] as SeriesPoint;
      say(
        `[${target.name}] ${p.t.toFixed(0)}s connected ${p.connected}/${o.devices}  generated ${generated}  published ${published} (${p.publishedPerS}/s)  core ${p.coreCpuPct}% fleet ${p.fleetCpuPct}%  rss ${p.rssMB} MB`,
        false,
      );
    };
    const ticker = setInterval(() => void sample().catch(() => undefined), 1_000);
    const faults: FaultOutcome[] = [];
    let failedThings: string[] = [];
    try {
      await pool.start();
      // Ramp: until every host started its devices and every device connected once (bounded).
      const rampDeadline = t0 + ((o.devices / o.rampPerSecond) * 3 + 60) * 1000;
      while (Date.now() < rampDeadline && !deps.signal?.aborted) {
        if (ramped.size === pool.hosts && sum(latest, (s) => s.everConnected) >= o.devices) break;
        await sleep(200);
        if (ramped.size === pool.hosts) latest = await pool.snapshot();
      }
      const rampEnd = Date.now();
      const cpu0 = cpuNow(await pool.snapshot());
      if (target.command && o.commandRate > 0) {
        commandLoad = createCommandLoad({
          target: target.command,
          ratePerSecond: o.commandRate,
          things: names,
          eligible: (t) => connected.has(t),
        });
        commandLoad.start();
      }
      // Measured window, with the faults in its middle.
      const end = rampEnd + o.durationS * 1000;
      const faultAt = rampEnd + (o.durationS * 1000) / 2;
      let faultsDone = target.faults.length === 0;
      while (Date.now() < end && !deps.signal?.aborted) {
        if (!faultsDone && Date.now() >= faultAt) {
          faultsDone = true;
          for (const f of target.faults) {
            const atS = round((Date.now() - t0) / 1000);
            if (f.kind === 'restart-core' && target.local) {
              const r = await target.local.restart();
              faults.push({ kind: f.kind, atS, affected: o.devices, detail: { downMs: r.downMs } });
            } else if (f.kind === 'drop-connections' && target.local) {
              const victims = pick(names, f.fraction);
              const n = target.local.dropConnections(victims);
              faults.push({ kind: f.kind, atS, affected: n, detail: { fraction: f.fraction } });
            } else if (f.kind === 'sensor-failure') {
              failedThings = pick(names, f.fraction);
              const n = await pool.failSensors(failedThings);
              faults.push({ kind: f.kind, atS, affected: n, detail: { fraction: f.fraction } });
              // Once the sensors have failed a read, make those devices report (the periodic report is minutes away).
              setTimeout(() => void pool.syncShadow(failedThings).catch(() => undefined), o.intervalMs * 2 + 500);
            }
          }
        }
        await sleep(100);
      }
      const measureEnd = Date.now();
      latest = await pool.snapshot();
      const cpu1 = cpuNow(latest);
      const fleetRssEnd = inline ? 0 : sum(latest, (h) => h.processRssBytes);
      const commands = commandLoad ? await commandLoad.stop(10_000) : undefined;
      if (failedThings.length > 0) await pool.syncShadow(failedThings);
      // Let reconnects and outbox backlogs settle before stopping (bounded): every device that
      // connected is connected again and no more than a few batches wait in outboxes.
      const catchUp = Date.now() + o.drainTimeoutS * 1000;
      for (;;) {
        latest = await pool.snapshot();
        const settled =
          sum(latest, (s) => s.connected) >= sum(latest, (s) => s.everConnected) &&
          sum(latest, (s) => s.outboxDepth) <= pool.hosts * 2;
        if (settled || Date.now() > catchUp || deps.signal?.aborted) break;
        await sleep(250);
      }
      say(`[${target.name}] stopping ${o.devices} agents`, false);
      clearInterval(ticker);
      while (sampling) await sleep(20);
      const finals: HostFinal[] = await pool.stop();
      const stoppedAt = Date.now();
      const generated = finals.reduce((a, f) => a + f.agentReadings, 0);
      const published = sum(finals, (s) => s.published);
      // Stored: wait until the store has everything acknowledged (the rules engine works asynchronously).
      let stored = 0;
      let storedBatches = 0;
      let storedVia = '';
      const drainDeadline = Date.now() + o.drainTimeoutS * 1000;
      if (target.bare) {
        while (target.bare.received.readings < published && Date.now() < drainDeadline) await sleep(100);
        stored = target.bare.received.readings;
        storedBatches = target.bare.received.messages;
        storedVia = 'bare broker: readings delivered to one in-process subscriber';
      } else if (target.readBackApi) {
        let rb = await target.readBackApi();
        while (rb.readings < published && Date.now() < drainDeadline) {
          await sleep(2_000);
          rb = await target.readBackApi();
        }
        stored = rb.readings;
        storedBatches = rb.batches;
        storedVia = 'the telemetry query API (GET /things/{thing}/telemetry, every reading of every thing)';
      } else if (target.readBack) {
        await target.local?.services.rules.idle();
        let rb = target.readBack();
        while ((rb?.readings ?? 0) < published && Date.now() < drainDeadline) {
          await sleep(250);
          rb = target.readBack();
        }
        storedBatches = rb?.batches ?? 0;
        stored = target.countStored ? await target.countStored(names) : (rb?.readings ?? 0);
        storedVia = target.countStored
          ? 'TelemetryStore.countReadings per thing (SQLite telemetry store)'
          : 'SQLite telemetry store file';
      }
      const drainS = (Date.now() - stoppedAt) / 1000;
      // Latency from the store's own insert times (or the bare broker's subscriber).
      let sampleToStored: Float64Array<ArrayBufferLike> = new Float64Array();
      let sealedToStored: Float64Array<ArrayBufferLike> = new Float64Array();
      let latencyEndpoint = '';
      if (target.bare) {
        sealedToStored = Float64Array.from(target.bare.received.sealedToBrokerMs);
        latencyEndpoint = 'sealed → delivered by the bare broker to its subscriber';
        const perS = target.bare.perSecond;
        for (const p of series) p.storedPerS = perS.get(Math.floor((t0 + p.t * 1000) / 1000)) ?? 0;
      } else if (target.readBack) {
        const sampled = pick(names, Math.min(1, o.latencyThings / names.length));
        const rb = readStoreFor(target, sampled);
        if (rb) {
          sampleToStored = rb.sampleToStoredMs;
          sealedToStored = rb.sealedToStoredMs;
          for (const p of series) p.storedPerS = rb.perSecond.get(Math.floor((t0 + p.t * 1000) / 1000)) ?? 0;
        }
        latencyEndpoint = 'the telemetry store’s insert time (telemetry_batches.received_at)';
      }
      const measuredS = Math.max(0.001, (measureEnd - rampEnd) / 1000);
      const firstSum = sum(finals, (s) => s.firstConnectMs.sum);
      const firstCount = sum(finals, (s) => s.firstConnectMs.count);
      const lastFirst = Math.max(...finals.map((f) => f.lastFirstConnectAt));
      const connectSeconds = Math.max(0.001, (lastFirst - t0) / 1000);
      const everConnected = sum(finals, (s) => s.everConnected);
      const seriesGen = series.filter((p) => p.t * 1000 >= rampEnd - t0 && p.t * 1000 <= measureEnd - t0);
      const unhealthy = new Set(finals.flatMap((f) => f.reportedUnhealthy));
      const failedSet = new Set(failedThings);
      const hostEventLoop = finals.map((f) => f.eventLoop);
      const result: PhaseResult = {
        name: target.name,
        deviceHosts: { mode: pool.mode, hosts: pool.hosts, transport: o.transport },
        devices: o.devices,
        connect: {
          everConnected,
          connectedAtEnd: sum(latest, (s) => s.connected),
          maxConnected: Math.max(0, ...series.map((p) => p.connected)),
          seconds: round(connectSeconds, 2),
          perSecond: round(everConnected / connectSeconds),
          firstConnectMeanMs: firstCount ? round(firstSum / firstCount) : 0,
          firstConnectMaxMs: Math.max(0, ...finals.map((f) => f.firstConnectMs.max)),
          connectFailures: sum(finals, (s) => s.connectFailures),
          reconnects: sum(finals, (s) => s.reconnects),
          interruptions: sum(finals, (s) => s.interruptions),
        },
        telemetry: {
          generated,
          published,
          publishedBatches: sum(finals, (s) => s.publishedBatches),
          stored,
          storedBatches,
          storedVia,
          lost: generated - stored,
          droppedByOutbox: sum(finals, (s) => s.dropped),
          unsentAtStop: finals.reduce((a, f) => a + f.leftInOutbox.readings, 0),
          generatedPerS: round(seriesGen.reduce((a, p) => a + p.generatedPerS, 0) / Math.max(1, seriesGen.length)),
          publishedPerS: round(seriesGen.reduce((a, p) => a + p.publishedPerS, 0) / Math.max(1, seriesGen.length)),
          publishedBytes: sum(finals, (s) => s.publishedBytes),
        },
        latency: {
          sampleToStoredMs: quantiles(sampleToStored),
          sealedToStoredMs: quantiles(sealedToStored),
          sampleToStoredHistogram: logHistogram(sampleToStored),
          sealedToStoredHistogram: logHistogram(sealedToStored),
          sampledThings: target.bare ? o.devices : Math.min(o.devices, o.latencyThings),
          endpoint: latencyEndpoint,
        },
        commands: commands ? (({ roundTripSamples: _s, ...rest }) => rest)(commands) : undefined,
        commandRoundTripHistogram: commands ? logHistogram(commands.roundTripSamples) : undefined,
        resources: {
          coreCpuPct: round(((cpu1.mainMs - cpu0.mainMs) * 100) / (measuredS * 1000)),
          fleetCpuPct: round(((cpu1.otherMs - cpu0.otherMs) * 100) / (measuredS * 1000)),
          cpuSplit: inline
            ? 'one process: core and devices together (devices inline)'
            : 'core = this process; fleet = the device-host processes',
          coreRssMaxMB: Math.round(rssMax / MB),
          coreRssEndMB: Math.round(process.memoryUsage().rss / MB),
          fleetRssMaxMB: Math.round(fleetRssMax / MB),
          fleetRssEndMB: Math.round(fleetRssEnd / MB),
          coreEventLoop: {
            p50Ms: round(Math.max(0, loop.percentile(50) / 1e6 - 10), 2),
            p99Ms: round(Math.max(0, loop.percentile(99) / 1e6 - 10), 2),
            maxMs: round(Math.max(0, loop.max / 1e6 - 10), 2),
          },
          hostEventLoop,
          hostHeapUsedMB: finals.map((f) => Math.round(f.heapUsedBytes / MB)),
        },
        faults,
        ...(failedThings.length > 0
          ? {
              sensorFailure: {
                failedDevices: failedThings.length,
                reportedUnhealthy: unhealthy.size,
                reportedUnhealthyAmongFailed: [...unhealthy].filter((t) => failedSet.has(t)).length,
                reportedUnhealthyAmongHealthy: [...unhealthy].filter((t) => !failedSet.has(t)).length,
              },
            }
          : {}),
        windows: { rampS: round((rampEnd - t0) / 1000, 2), measuredS: round(measuredS, 2), drainS: round(drainS, 2) },
        series,
      };
      say(
        `[${target.name}] generated ${generated}  published ${published}  stored ${stored}  lost ${generated - stored}`,
        true,
      );
      return result;
    } catch (err) {
      clearInterval(ticker);
      await pool.terminate().catch(() => undefined);
      throw err;
    } finally {
      loop.disable();
    }
  }

  function readStoreFor(target: PhaseTarget, things: readonly string[]) {
    void target;
    return storeReader?.(things);
  }
  let storeReader: ((things: readonly string[]) => ReturnType<typeof readStore>) | undefined;

  return {
    runId,
    async run(): Promise<FleetResult> {
      const startedAt = new Date().toISOString();
      if (o.target === 'aws') return runAws();
      const ownDir = o.target === 'local' && !o.dataDir;
      const dataDir =
        o.dataDir ?? mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pifleet-fleet-'));
      const certDir = path.join(dataDir, 'fleet-certs', runId);
      const phases: PhaseResult[] = [];
      let provisioning: FleetResult['provisioning'];
      let identities: readonly FleetIdentity[] = [];
      let cleanup = { removed: 0, failed: 0, kept: o.keep };
      let region = '';
      let accountId = '';
      let local: LocalTarget | undefined;
      try {
        if (o.target === 'local') {
          say('starting the local IoT Core', true);
          local = await startLocalTarget({ dataDir });
          region = local.info.region;
          accountId = local.info.accountId;
        } else {
          const endpoint = readExternalEndpoint(dataDir);
          region = endpoint.region;
          accountId = endpoint.accountId;
        }
        say(`provisioning ${o.devices} devices (EC P-256, in process)`, true);
        const registry =
          local?.services.registry ??
          openSqliteRegistry({
            file: localCorePaths(dataDir).registryFile,
            account: { region, accountId },
            now: Date.now,
          });
        const ca =
          local?.services.ca ??
          (await (
            await import('@pifleet/cloud')
          ).loadOrCreateCa({ dir: localCorePaths(dataDir).caDir, now: Date.now }));
        try {
          const prov = await provisionLocalFleet({
            registry,
            ca,
            region,
            accountId,
            dir: certDir,
            thingNames: names,
            onProgress: (n) => {
              if (n % 500 === 0 || n === names.length) say(`provisioned ${n}/${names.length}`, n === names.length);
            },
          });
          identities = prov.identities;
          provisioning = {
            seconds: round(prov.seconds, 2),
            perDeviceMs: round((prov.seconds * 1000) / names.length, 2),
            keyType: prov.keyType,
            dataDir,
          };
        } finally {
          if (!local) registry.close();
        }

        const telemetryFile = localCorePaths(dataDir).telemetryFile;
        storeReader = (things) => readStore(telemetryFile, `${thingPrefix}-`, things);
        if (local) {
          const l = local;
          const info = l.info;
          phases.push(
            await runPhase(
              {
                name: 'local-core',
                endpoint: info.mqtt.host,
                port: info.mqtt.port,
                caFile: info.caFile,
                shadow: true,
                local: l,
                command: {
                  baseUrl: `${info.http}/api`,
                  region: info.region,
                  credentials: l.services.credentials,
                },
                readBack: () => readStore(telemetryFile, `${thingPrefix}-`, []),
                countStored: async (things) => {
                  let n = 0;
                  for (const t of things) n += await l.services.telemetry.countReadings(t);
                  return n;
                },
                faults: o.faults,
              },
              identities,
            ),
          );
          await l.stop();
          local = undefined;
          if (o.baseline) {
            say('starting the bare broker (baseline)', true);
            const bare = await startBareBroker({ dataDir, region, accountId });
            try {
              phases.push(
                await runPhase(
                  {
                    name: 'bare-broker',
                    endpoint: bare.host,
                    port: bare.port,
                    caFile: bare.caFile,
                    shadow: false,
                    bare,
                    faults: [],
                  },
                  identities,
                ),
              );
            } finally {
              await bare.stop();
            }
          }
        } else {
          const ep = readExternalEndpoint(dataDir);
          phases.push(
            await runPhase(
              {
                name: 'external-core',
                endpoint: ep.host,
                port: ep.port,
                caFile: localCorePaths(dataDir).caFile,
                shadow: true,
                readBack: () => readStore(telemetryFile, `${thingPrefix}-`, []),
                ...(ep.http && ep.credentials
                  ? { command: { baseUrl: `${ep.http}/api`, region, credentials: ep.credentials } }
                  : {}),
                faults: o.faults,
              },
              identities,
            ),
          );
        }
      } finally {
        await local?.stop().catch(() => undefined);
        if (!o.keep && identities.length > 0) {
          const registry = openSqliteRegistry({
            file: localCorePaths(dataDir).registryFile,
            account: { region, accountId },
            now: Date.now,
          });
          try {
            const r = await deprovisionLocalFleet({ registry, identities, policyName: 'pifleet-device', dir: certDir });
            cleanup = { ...r, kept: false };
          } finally {
            registry.close();
          }
        }
        if (ownDir && !o.keep) rmSync(dataDir, { recursive: true, force: true });
      }
      return finish(startedAt, phases, provisioning, cleanup);
    },
  };

  function finish(
    startedAt: string,
    phases: PhaseResult[],
    provisioning: FleetResult['provisioning'],
    cleanup: FleetResult['cleanup'],
  ): FleetResult {
    const core = phases.find((p) => p.name === 'local-core');
    const bare = phases.find((p) => p.name === 'bare-broker');
    const cpu = (p: PhaseResult) => p.resources.coreCpuPct;
    return {
      version: FLEET_RESULT_VERSION,
      runId,
      startedAt,
      options: o,
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        platform: `${os.platform()} ${os.arch()}`,
      },
      provisioning,
      phases,
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
      cleanup,
      zeroLoss: phases.every((p) => p.telemetry.lost === 0),
    };
  }

  async function runAws(): Promise<FleetResult> {
    const startedAt = new Date().toISOString();
    const region = o.region as string;
    const apiUrl = o.apiUrl as string;
    // The provisioning CLI's own resolution of an AWS target (region, profile, env credentials).
    const resolved = await resolveTarget({
      region,
      ...(o.profile ? { profile: o.profile } : {}),
      env: { ...process.env, PIFLEET_LOCAL: undefined },
      cwd: process.cwd(),
    });
    const credentials = resolved.credentials;
    if (!credentials) {
      throw new SimulatorError(
        'fleet.aws',
        'the aws target signs command and query API calls: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)',
      );
    }
    const api: CommandApiTarget = { baseUrl: apiUrl, region, credentials };
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-fleet-aws-'));
    const bundles = path.join(workDir, 'bundles');
    const global = ['--region', region, ...(o.profile ? ['--profile', o.profile] : [])];
    const cli = async (argv: string[]) => {
      const out: string[] = [];
      const sink = { write: (c: string) => out.push(c) };
      const code = await runCli([...argv, ...global], { stdout: sink, stderr: sink, env: process.env, cwd: workDir });
      return { code, text: out.join('') };
    };
    const phases: PhaseResult[] = [];
    let provisioning: FleetResult['provisioning'];
    let cleanup: FleetResult['cleanup'] = { removed: 0, failed: 0, kept: o.keep };
    let created = false;
    try {
      // The provisioning CLI's fleet path: AWS's control-plane rate limits, retries, a journal.
      say(`provisioning ${o.devices} things in ${region} (pifleet fleet create)`, true);
      const t0 = Date.now();
      const made = await cli([
        'fleet',
        'create',
        '--prefix',
        thingPrefix,
        '--count',
        String(o.devices),
        '--out',
        bundles,
        '--concurrency',
        '16',
      ]);
      created = true;
      if (made.code !== 0) {
        throw new SimulatorError(
          'fleet.aws',
          `provisioning failed (exit ${made.code}): ${made.text.trim().split('\n').slice(-3).join(' / ')}`,
        );
      }
      const seconds = (Date.now() - t0) / 1000;
      provisioning = {
        seconds: round(seconds, 2),
        perDeviceMs: round((seconds * 1000) / o.devices, 2),
        keyType: 'RSA-2048 (CreateKeysAndCertificate)',
        dataDir: bundles,
      };
      const thingNames = fleetThingNames(thingPrefix, o.devices);
      const identities: FleetIdentity[] = thingNames.map((thingName) => ({
        thingName,
        certFile: path.join(bundles, thingName, BUNDLE_FILES.certificate),
        keyFile: path.join(bundles, thingName, BUNDLE_FILES.privateKey),
        certificateId: '',
        certificateArn: '',
      }));
      const first = thingNames[0] as string;
      const config = JSON.parse(readFileSync(path.join(bundles, first, BUNDLE_FILES.agentConfig), 'utf8')) as {
        endpoint: string;
        port: number;
      };
      const override = o.mqttEndpoint ? splitEndpoint(o.mqttEndpoint) : undefined;
      const window = { from: Date.now() - 60_000 };
      phases.push(
        await runPhase(
          {
            name: 'aws',
            endpoint: override?.host ?? config.endpoint,
            port: override?.port ?? config.port,
            caFile: o.caFile ?? path.join(bundles, first, BUNDLE_FILES.ca),
            shadow: true,
            command: api,
            readBackApi: () => readBackViaQueryApi(api, thingNames, { from: window.from, to: Date.now() + 60_000 }),
            faults: o.faults,
          },
          identities,
        ),
      );
    } finally {
      if (created && !o.keep) {
        say(`deleting the ${o.devices} things (pifleet fleet delete)`, true);
        const gone = await cli(['fleet', 'delete', '--prefix', thingPrefix, '--out', bundles, '--concurrency', '16']);
        cleanup = { removed: gone.code === 0 ? o.devices : 0, failed: gone.code === 0 ? 0 : o.devices, kept: false };
      }
      if (!o.keep) rmSync(workDir, { recursive: true, force: true });
    }
    return finish(startedAt, phases, provisioning, cleanup);
  }
}

/** The running core's endpoint file (written by `pifleet-local-core`) in its data dir. */
function readExternalEndpoint(dataDir: string): {
  host: string;
  port: number;
  http?: string;
  region: string;
  accountId: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
} {
  const file = path.join(dataDir, 'endpoint.json');
  if (!existsSync(file)) {
    throw new SimulatorError('fleet.external', `no endpoint.json in ${dataDir}: is the local IoT Core running there?`);
  }
  const doc = JSON.parse(readFileSync(file, 'utf8')) as {
    mqtt?: { host?: string; port?: number };
    http?: string;
    region?: string;
    accountId?: string;
  };
  const creds = readCredentials(path.join(dataDir, 'credentials'));
  return {
    host: doc.mqtt?.host ?? '127.0.0.1',
    port: doc.mqtt?.port ?? 8883,
    ...(doc.http ? { http: doc.http } : {}),
    region: doc.region ?? 'us-east-1',
    accountId: doc.accountId ?? '000000000000',
    ...(creds ? { credentials: creds } : {}),
  };
}

function readCredentials(file: string): { accessKeyId: string; secretAccessKey: string } | undefined {
  if (!existsSync(file)) return undefined;
  return parseSharedCredentials(readFileSync(file, 'utf8'), LOCAL_PROFILE);
}

export type FleetRunner = ReturnType<typeof createFleetRunner>;
