import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { type AgentConfig, createSystemClock, loadConfig } from '@pifleet/device-agent';
import type { MqttProtocol } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';
import { SIM_ADDRESSES } from '../hardware/simulated-device.js';
import type { ReleaseFault } from '../jobs/simulated-updater.js';
import { silentLogger } from '../logger.js';
import { createFleetDevice, type FleetDevice, type FleetTransport, type ReportedSummary } from './device.js';
import type { DevicesThrottled } from './result.js';
import { createSharedClock } from './shared-clock.js';

/** How each device samples and batches (the `--sensors`, `--interval-ms`, `--batch-*` flags). */
export interface TelemetryProfile {
  /** 1: BME280 `env`; 2: + BH1750 `light`; 3: + ADS1115 `soil`. */
  readonly sensors: 1 | 2 | 3;
  readonly intervalMs: number;
  readonly batchReadings: number;
  readonly batchAgeMs: number;
  /** Shadow sync on (off against a bare broker, which has no shadow service). */
  readonly shadow: boolean;
  /** Upper bound of the SDK's reconnect backoff. */
  readonly reconnectMaxMs: number;
  /** Each device's MQTT client (`--transport`). Default `crt`, the device SDK. */
  readonly transport?: FleetTransport;
  /** The MQTT version each device speaks (`--protocol`). Default `'5'`, as the agent's. */
  readonly protocol?: MqttProtocol;
  /** Telemetry publishes per second of each agent (`--publish-rate`); default the agent's. */
  readonly publishPerSecond?: number;
  /** Jobs (`--job`): the agents run them, with a simulated updater; absent: jobs off, as before. */
  readonly jobs?: JobsProfile;
}

/** How the devices of a `--job` run update themselves. */
export interface JobsProfile {
  /** PEM public keys releases must be signed with (`update.publicKeys`). */
  readonly publicKeys: readonly string[];
  /** The version every device runs at start. */
  readonly initialVersion: string;
  readonly healthDeadlineMs: number;
  readonly installMs: number;
}

/** One device's jobs outcome: the version it runs at the end, and what its updates did. */
export interface DeviceJobsFinal {
  readonly thingName: string;
  readonly version: string;
  /** It runs a version that works (never false at the end unless a rollback is still pending). */
  readonly working: boolean;
  readonly restarts: number;
}

export interface HostDeviceSpec {
  readonly thingName: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly seed: string | number;
  /** What goes wrong with a release on this device (`--fail-percent` and co.). */
  readonly releaseFaults?: readonly ReleaseFault[];
}

export interface HostInit {
  readonly hostId: number;
  readonly endpoint: string;
  readonly port: number;
  readonly caFile: string;
  readonly profile: TelemetryProfile;
  readonly devices: readonly HostDeviceSpec[];
  /** Device starts per second in this host. */
  readonly rampPerSecond: number;
  /** Shared-clock grid. Default 5 ms. */
  readonly clockResolutionMs?: number;
}

/** Counters of one host since it started (monotonic, except `connected` and `outboxDepth`). */
export interface HostSnapshot {
  readonly hostId: number;
  readonly at: number;
  readonly devices: number;
  readonly started: number;
  /** Devices with a connection up now. */
  readonly connected: number;
  /** Devices that connected at least once. */
  readonly everConnected: number;
  /** Successful connects, reconnects included. */
  readonly connects: number;
  readonly reconnects: number;
  readonly connectFailures: number;
  readonly interruptions: number;
  /** Readings sealed into batches (generated and handed to the outbox). */
  readonly generated: number;
  readonly generatedBatches: number;
  /** Readings whose batch the broker acknowledged (PUBACK). */
  readonly published: number;
  readonly publishedBatches: number;
  readonly publishedBytes: number;
  /** Readings dropped by outbox bounds. */
  readonly dropped: number;
  readonly outboxDepth: number;
  /** Milliseconds from a device's start to its first CONNACK: sum, max, count (for the mean). */
  readonly firstConnectMs: { readonly sum: number; readonly max: number; readonly count: number };
  readonly eventLoop: {
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly maxMs: number;
    readonly utilization: number;
  };
  readonly heapUsedBytes: number;
  /** CPU time of the process this host runs in (user + system, µs) and its RSS. */
  readonly processCpuMicros: number;
  readonly processRssBytes: number;
  /** Time of the latest first connect of a device (epoch ms; 0 before any). */
  readonly lastFirstConnectAt: number;
  /** Time the last device was started (ramp end), or undefined while ramping. */
  readonly rampedAt: number | undefined;
}

export interface HostFinal extends HostSnapshot {
  /** Readings counted by the agents themselves (agent.status().readings), after stop. */
  readonly agentReadings: number;
  /** Batches still in outboxes after stop (never acknowledged). */
  readonly leftInOutbox: { readonly batches: number; readonly readings: number };
  /** Sensor errors counted by the agents. */
  readonly sensorErrors: number;
  /** Things whose last accepted report named unhealthy sensors. */
  readonly reportedUnhealthy: readonly string[];
  /** What the agents were refused for a quota (agent.status().throttled, summed). */
  readonly throttled: DevicesThrottled;
  /** With jobs: every device's final version. */
  readonly jobs?: readonly DeviceJobsFinal[];
}

export type HostEvent =
  | {
      readonly type: 'reported';
      readonly thingName: string;
      readonly outputs: ReportedSummary['outputs'];
      readonly at: number;
    }
  | { readonly type: 'ramped'; readonly hostId: number; readonly at: number };

export interface DeviceHost {
  start(): void;
  snapshot(): HostSnapshot;
  failSensors(thingNames: readonly string[]): number;
  syncShadow(thingNames: readonly string[]): Promise<void>;
  /** Every device stops taking readings and seals its open batch, but stays connected and publishing. */
  pauseSampling(): Promise<void>;
  /** Stops every agent (seal, send, drain in-flight, offline status, disconnect). */
  stop(): Promise<HostFinal>;
}

const SENSOR_IDS = ['env', 'light', 'soil'] as const;

/** The agent config every device of a fleet shares, with this device's identity. */
export function fleetAgentConfigTemplate(
  init: Pick<HostInit, 'endpoint' | 'port' | 'caFile' | 'profile'>,
): AgentConfig {
  const p = init.profile;
  const sensors = [
    { id: SENSOR_IDS[0], driver: 'bme280', address: SIM_ADDRESSES.bme280, intervalMs: p.intervalMs },
    { id: SENSOR_IDS[1], driver: 'bh1750', address: SIM_ADDRESSES.bh1750, intervalMs: p.intervalMs },
    {
      id: SENSOR_IDS[2],
      driver: 'ads1115',
      address: SIM_ADDRESSES.ads1115,
      intervalMs: p.intervalMs,
      channels: [
        { name: 'moisture', input: 0 },
        { name: 'ldr', input: 1 },
      ],
    },
  ].slice(0, p.sensors);
  const doc = {
    thingName: 'fleet-template',
    endpoint: init.endpoint,
    port: init.port,
    certFile: 'cert.pem',
    keyFile: 'key.pem',
    caFile: init.caFile,
    hardware: 'simulated',
    mqtt: { protocol: p.protocol ?? '5', reconnectMinMs: 1_000, reconnectMaxMs: Math.max(1_000, p.reconnectMaxMs) },
    sensors,
    outputs: [{ id: 'relay', line: 17 }],
    batch: { maxReadings: p.batchReadings, maxAgeMs: p.batchAgeMs },
    ...(p.publishPerSecond === undefined ? {} : { publish: { maxPerSecond: p.publishPerSecond } }),
    outbox: { path: ':memory:' },
    shadow: { enabled: p.shadow },
    // No health reports: their shadow updates are load a telemetry run does not measure, and every
    // device of a host would report the same host's CPU and memory.
    health: { intervalSeconds: 0 },
    // Jobs only in a `--job` run: a job runner per device subscribes to its jobs topics, which a
    // telemetry load run does not measure. Reboot jobs restart the simulated agent.
    jobs: { enabled: p.jobs !== undefined, allowReboot: true },
    ...(p.jobs ? { update: { publicKeys: p.jobs.publicKeys } } : {}),
    logLevel: 'error',
    shutdownTimeoutMs: 10_000,
  };
  const r = loadConfig({ fileText: JSON.stringify(doc) });
  if (!r.ok) {
    throw new SimulatorError('FLEET_CONFIG', 'the fleet profile is not a valid agent config', {
      data: { issues: r.issues },
    });
  }
  return r.value;
}

const RAMP_TICK_MS = 10;
/** Ramp pacing holds while a tick is this late (ms), … */
const RAMP_MAX_LATE_MS = 100;
/** … while more than this many seconds' worth of started devices have not connected yet, … */
const RAMP_MAX_PENDING_S = 5;
/** … or while more than this many batches per connected device wait for a PUBACK. */
const RAMP_MAX_BACKLOG_PER_DEVICE = 2;
/** Most device starts in one tick. */
const RAMP_MAX_BURST = 3;

/** The histogram's values include its sampling interval; lag is what exceeds it. */
const LOOP_RESOLUTION_MS = 10;
const quantileMs = (h: ReturnType<typeof monitorEventLoopDelay>, q: number) => {
  const v = Math.max(0, h.percentile(q) / 1e6 - LOOP_RESOLUTION_MS);
  return Number.isFinite(v) ? Number(v.toFixed(2)) : 0;
};

/**
 * Runs a share of the fleet in the current thread (the main thread, or a worker): builds each
 * device from the shared config template, starts them at the host's ramp rate, and counts what
 * they do through hooks (no per-device polling, no per-device logging).
 */
export function createDeviceHost(init: HostInit, emit: (event: HostEvent) => void): DeviceHost {
  const template = fleetAgentConfigTemplate(init);
  // Every device trusts the same CA: read it once, not once per device.
  let caPem: Buffer | undefined;
  const readFile = (file: string): Buffer => {
    if (file !== init.caFile) return readFileSync(file);
    caPem ??= readFileSync(file);
    return caPem;
  };
  const clock = createSharedClock({ resolutionMs: init.clockResolutionMs ?? 5 });
  const ioClock = createSystemClock();
  const logger = silentLogger();
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  /** The whole run's lag (the per-snapshot histogram above is reset at every snapshot). */
  const loopTotal = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  let elu = performance.eventLoopUtilization();
  const eluStart = elu;
  const devices: FleetDevice[] = [];
  const connectedNow = new Set<string>();
  const ever = new Set<string>();
  const startedAt = new Map<string, number>();
  const lastOutputs = new Map<string, boolean | undefined>();
  const unhealthy = new Set<string>();
  const c = {
    started: 0,
    connects: 0,
    reconnects: 0,
    connectFailures: 0,
    interruptions: 0,
    generated: 0,
    generatedBatches: 0,
    published: 0,
    publishedBatches: 0,
    publishedBytes: 0,
    dropped: 0,
    depth: 0,
    firstSum: 0,
    firstMax: 0,
    firstCount: 0,
    lastFirstConnectAt: 0,
  };
  let rampTimer: NodeJS.Timeout | undefined;
  let rampedAt: number | undefined;
  let stopping = false;

  const hooks = {
    onPut(readings: number) {
      c.generated += readings;
      c.generatedBatches += 1;
      c.depth += 1;
    },
    onAck(readings: number, bytes: number) {
      c.published += readings;
      c.publishedBatches += 1;
      c.publishedBytes += bytes;
      c.depth -= 1;
    },
    onDrop(readings: number) {
      c.dropped += readings;
    },
    onConnected(thing: string, first: boolean) {
      connectedNow.add(thing);
      c.connects += 1;
      if (!ever.has(thing)) {
        ever.add(thing);
        c.lastFirstConnectAt = Date.now();
        const t0 = startedAt.get(thing);
        if (t0 !== undefined) {
          const ms = Date.now() - t0;
          c.firstSum += ms;
          c.firstCount += 1;
          if (ms > c.firstMax) c.firstMax = ms;
        }
      } else if (!first) c.reconnects += 1;
    },
    onInterrupted(thing: string) {
      connectedNow.delete(thing);
      c.interruptions += 1;
    },
    onConnectFailed() {
      c.connectFailures += 1;
    },
    onReportAccepted(thing: string, reported: ReportedSummary) {
      if (reported.unhealthy.length > 0) unhealthy.add(thing);
      else unhealthy.delete(thing);
      const relay = reported.outputs.relay;
      if (lastOutputs.get(thing) !== relay) {
        lastOutputs.set(thing, relay);
        emit({ type: 'reported', thingName: thing, outputs: reported.outputs, at: Date.now() });
      }
    },
  };

  for (const spec of init.devices) {
    const config: AgentConfig = {
      ...template,
      thingName: spec.thingName,
      certFile: spec.certFile,
      keyFile: spec.keyFile,
      mqtt: { ...template.mqtt, clientId: spec.thingName },
    };
    devices.push(
      createFleetDevice({
        config,
        seed: spec.seed,
        clock,
        ioClock,
        logger,
        hooks,
        bootId: `${spec.thingName}-${Date.now().toString(36)}`,
        transport: init.profile.transport ?? 'crt',
        readFile,
        ...(init.profile.jobs
          ? {
              jobs: {
                initialVersion: init.profile.jobs.initialVersion,
                faults: new Set(spec.releaseFaults ?? []),
                healthDeadlineMs: init.profile.jobs.healthDeadlineMs,
                installMs: init.profile.jobs.installMs,
              },
            }
          : {}),
      }),
    );
  }
  const byName: Map<string, FleetDevice> = new Map(devices.map((d) => [d.thingName, d]));

  const snapshot = (): HostSnapshot => {
    const e = performance.eventLoopUtilization(elu);
    elu = performance.eventLoopUtilization();
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    const s: HostSnapshot = {
      hostId: init.hostId,
      at: Date.now(),
      devices: devices.length,
      started: c.started,
      connected: connectedNow.size,
      everConnected: ever.size,
      connects: c.connects,
      reconnects: c.reconnects,
      connectFailures: c.connectFailures,
      interruptions: c.interruptions,
      generated: c.generated,
      generatedBatches: c.generatedBatches,
      published: c.published,
      publishedBatches: c.publishedBatches,
      publishedBytes: c.publishedBytes,
      dropped: c.dropped,
      outboxDepth: c.depth,
      firstConnectMs: { sum: c.firstSum, max: c.firstMax, count: c.firstCount },
      eventLoop: {
        p50Ms: quantileMs(loop, 50),
        p99Ms: quantileMs(loop, 99),
        maxMs: Number(Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS).toFixed(2)),
        utilization: Number(e.utilization.toFixed(3)),
      },
      heapUsedBytes: mem.heapUsed,
      processCpuMicros: cpu.user + cpu.system,
      processRssBytes: mem.rss,
      lastFirstConnectAt: c.lastFirstConnectAt,
      rampedAt,
    };
    loop.reset();
    return s;
  };

  return {
    start() {
      loop.enable();
      loopTotal.enable();
      let credit = 1;
      let last = Date.now();
      let i = 0;
      const tick = () => {
        if (stopping) return;
        const now = Date.now();
        const elapsed = now - last;
        const lateMs = elapsed - RAMP_TICK_MS;
        last = now;
        // Adaptive pacing: hold new connections while this host's event loop is late, while many
        // handshakes are still pending, or while un-acknowledged batches pile up; never make up
        // for held time with a burst (devices started together sample and seal in step).
        const pendingConnects = c.started - ever.size;
        const hold =
          lateMs > RAMP_MAX_LATE_MS ||
          pendingConnects > Math.max(10, init.rampPerSecond * RAMP_MAX_PENDING_S) ||
          c.depth > Math.max(100, connectedNow.size * RAMP_MAX_BACKLOG_PER_DEVICE);
        if (hold) credit = Math.min(credit, 1);
        else credit = Math.min(credit + (elapsed * init.rampPerSecond) / 1000, RAMP_MAX_BURST);
        while (!hold && credit >= 1 && i < devices.length) {
          credit -= 1;
          const d = devices[i++] as FleetDevice;
          startedAt.set(d.thingName, Date.now());
          c.started += 1;
          d.start().catch(() => {
            c.connectFailures += 1;
          });
        }
        if (i >= devices.length) {
          rampedAt = Date.now();
          emit({ type: 'ramped', hostId: init.hostId, at: rampedAt });
          return;
        }
        rampTimer = setTimeout(tick, RAMP_TICK_MS);
      };
      tick();
    },
    snapshot,
    failSensors(thingNames) {
      let n = 0;
      for (const t of thingNames) {
        const d = byName.get(t);
        if (d) {
          d.failSensors();
          n += 1;
        }
      }
      return n;
    },
    async syncShadow(thingNames) {
      await Promise.all(
        thingNames.map((t) =>
          byName
            .get(t)
            ?.syncShadow()
            .catch(() => undefined),
        ),
      );
    },
    async pauseSampling() {
      await Promise.all(devices.map((d) => d.pauseSampling().catch(() => undefined)));
    },
    async stop() {
      stopping = true;
      if (rampTimer) clearTimeout(rampTimer);
      await Promise.all(devices.map((d) => d.stop('fleet run finished').catch(() => undefined)));
      const jobs: DeviceJobsFinal[] | undefined = init.profile.jobs
        ? devices.map((d) => ({
            thingName: d.thingName,
            version: d.updater?.running.version ?? init.profile.jobs?.initialVersion ?? '',
            working: d.updater?.running.working ?? true,
            restarts: d.restarts,
          }))
        : undefined;
      let agentReadings = 0;
      let sensorErrors = 0;
      let leftBatches = 0;
      const throttled = { publishes: 0, unacknowledged: 0, connects: 0, shadow: 0 };
      for (const d of devices) {
        // Summed over the device's agent processes: a job's restarts start new agents.
        const status = d.totals();
        if (!status) continue;
        agentReadings += status.readings;
        sensorErrors += status.sensorErrors;
        throttled.publishes += status.throttled.publishes;
        throttled.unacknowledged += status.throttled.unacknowledged;
        throttled.connects += status.throttled.connects;
        throttled.shadow += status.throttled.shadow;
      }
      leftBatches = c.depth;
      const final: HostFinal = {
        ...snapshot(),
        eventLoop: {
          p50Ms: quantileMs(loopTotal, 50),
          p99Ms: quantileMs(loopTotal, 99),
          maxMs: Number(Math.max(0, loopTotal.max / 1e6 - LOOP_RESOLUTION_MS).toFixed(2)),
          utilization: Number(performance.eventLoopUtilization(eluStart).utilization.toFixed(3)),
        },
        agentReadings,
        leftInOutbox: { batches: leftBatches, readings: c.generated - c.published - c.dropped },
        sensorErrors,
        reportedUnhealthy: [...unhealthy],
        throttled,
        ...(jobs ? { jobs } : {}),
      };
      loop.disable();
      loopTotal.disable();
      clock.close();
      // Let go of the agents so their native MQTT clients can be collected while the thread lives.
      devices.length = 0;
      byName.clear();
      return final;
    },
  };
}
