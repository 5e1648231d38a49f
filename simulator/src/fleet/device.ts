import {
  type Agent,
  type AgentConfig,
  type Clock,
  createAgentRuntime,
  type Logger,
  type Transport,
} from '@pifleet/device-agent';
import { createSimulatedHardware, SIM_ADDRESSES, type SimulatedHardware } from '../hardware/simulated-device.js';
import { createDeviceJobState } from '../jobs/device-state.js';
import {
  createSimulatedUpdater,
  type ReleaseFault,
  type RestartReason,
  type SimulatedUpdater,
} from '../jobs/simulated-updater.js';
import { createMemoryOutbox, type OutboxCounters } from './memory-outbox.js';

/**
 * The MQTT client under each simulated device: `crt`, the AWS IoT Device SDK the agent runs on a
 * device (and its shadow client), or `mqtt`, mqtt.js with the shadow over its reserved topics,
 * which costs a fleet host ~8× less CPU per connection (see `createMqttJsTransport`).
 */
export type FleetTransport = 'crt' | 'mqtt';

/** What a device host learns from its devices, without polling each agent. */
export interface DeviceHooks extends OutboxCounters {
  onConnected?(thingName: string, first: boolean): void;
  onInterrupted?(thingName: string): void;
  onConnectFailed?(thingName: string): void;
  /** A reported-state update the shadow service accepted. */
  onReportAccepted?(thingName: string, reported: ReportedSummary): void;
  /** The simulated agent process ended and a new one starts (after an update's switch, a rollback, a power cut, a reboot). */
  onRestart?(thingName: string, reason: DeviceRestartReason): void;
}

export type DeviceRestartReason = RestartReason | 'reboot';

/** How a device runs jobs (`config.jobs.enabled`): its simulated updater and its share of the release faults. */
export interface FleetDeviceJobs {
  /** The version the device runs before any update. */
  readonly initialVersion: string;
  readonly faults: ReadonlySet<ReleaseFault>;
  readonly healthDeadlineMs: number;
  readonly installMs: number;
}

/** The parts of an accepted reported state the fleet measures. */
export interface ReportedSummary {
  readonly outputs: Readonly<Record<string, boolean>>;
  /** Sensor ids the device reported unhealthy. */
  readonly unhealthy: readonly string[];
}

export interface FleetDeviceDeps {
  readonly config: AgentConfig;
  readonly seed: string | number;
  /** Sampling, batching and chip timers (the host's shared clock). */
  readonly clock: Clock;
  /** Reconnect backoff (system clock). */
  readonly ioClock: Clock;
  readonly logger: Logger;
  readonly hooks: DeviceHooks;
  readonly bootId: string;
  readonly transport?: FleetTransport;
  /** Reads PEM files for the mqtt.js transport (the host caches the shared CA). */
  readonly readFile?: (file: string) => Buffer;
  /** Jobs: the simulated updater's settings (with `config.jobs.enabled`). */
  readonly jobs?: FleetDeviceJobs;
}

export interface FleetDevice {
  readonly thingName: string;
  readonly hardware: SimulatedHardware;
  start(): Promise<void>;
  stop(reason?: string): Promise<void>;
  /** Every I2C chip of the device stops answering (the sensor-failure fault). */
  failSensors(): void;
  /** Reconciles and reports the shadow now. */
  syncShadow(): Promise<void>;
  /** Stops taking readings and seals the open batch; stays connected and keeps publishing its outbox. */
  pauseSampling(): Promise<void>;
  readonly agent: Agent | undefined;
  readonly transport: Transport | undefined;
  /** The simulated updater (with jobs): the version the device runs. */
  readonly updater: SimulatedUpdater | undefined;
  /** Agent processes started after the first (restarts by updates, rollbacks, power cuts, reboots). */
  readonly restarts: number;
  /** The agent's counters summed over every agent process the device ran (undefined before start). */
  totals(): AgentTotals | undefined;
}

/** The counters of `agent.status()` a fleet sums, over all of a device's agent processes. */
export interface AgentTotals {
  readonly readings: number;
  readonly sensorErrors: number;
  readonly throttled: {
    readonly publishes: number;
    readonly unacknowledged: number;
    readonly connects: number;
    readonly shadow: number;
  };
}

const addTotals = (a: AgentTotals, b: AgentTotals): AgentTotals => ({
  readings: a.readings + b.readings,
  sensorErrors: a.sensorErrors + b.sensorErrors,
  throttled: {
    publishes: a.throttled.publishes + b.throttled.publishes,
    unacknowledged: a.throttled.unacknowledged + b.throttled.unacknowledged,
    connects: a.throttled.connects + b.throttled.connects,
    shadow: a.throttled.shadow + b.throttled.shadow,
  },
});

const totalsOf = (agent: Agent | undefined): AgentTotals | undefined => {
  const s = agent?.status();
  return s ? { readings: s.readings, sensorErrors: s.sensorErrors, throttled: { ...s.throttled } } : undefined;
};

const summarize = (reported: object): ReportedSummary => {
  const r = reported as { outputs?: Record<string, boolean>; sensors?: Record<string, { healthy?: boolean }> };
  const unhealthy: string[] = [];
  for (const [id, s] of Object.entries(r.sensors ?? {})) if (s.healthy === false) unhealthy.push(id);
  return { outputs: r.outputs ?? {}, unhealthy };
};

/**
 * One simulated device of a fleet: the agent as `pifleet-agent` builds it (`createAgentRuntime`:
 * the chosen MQTT client over mutual TLS, shadow sync, the real drivers) on seeded simulated
 * hardware, with an in-memory outbox, the host's shared clock, and hooks that tell the host what
 * its devices do. No I/O until `start()`.
 */
export function createFleetDevice(deps: FleetDeviceDeps): FleetDevice {
  const { config, hooks } = deps;
  const thing = config.thingName;
  const hardware = createSimulatedHardware({ seed: deps.seed, clock: deps.clock, busNumber: config.i2cBus });
  // The device's disk: the outbox and the job execution state outlive each agent process.
  const outbox = createMemoryOutbox({ maxBytes: config.outbox.maxBytes, now: deps.clock.now, counters: hooks });
  const jobState = createDeviceJobState();
  let kernelBoot = 1;
  let processes = 0;
  let stopped = false;
  let restarting: Promise<void> | undefined;
  /** What the agent processes before the current one counted. */
  let past: AgentTotals | undefined;

  const newRuntime = () => {
    processes += 1;
    return createAgentRuntime({
      config,
      clock: deps.clock,
      ioClock: deps.ioClock,
      // Shadow request timeouts on the host's shared clock: one timer grid for thousands of devices.
      shadowClock: deps.clock,
      logger: deps.logger,
      // Each agent process numbers its batches from 0 again: a boot id of its own keeps them distinct.
      bootId: processes === 1 ? deps.bootId : `${deps.bootId}-${processes}`,
      ports: hardware.ports,
      transport: deps.transport ?? 'crt',
      outbox,
      onTransport: (t) => {
        t.on('connected', (e) => hooks.onConnected?.(thing, e.first));
        t.on('interrupted', () => hooks.onInterrupted?.(thing));
        t.on('connectFailed', () => hooks.onConnectFailed?.(thing));
      },
      observeShadow: (inner) => ({
        get: () => inner.get(),
        async updateReported(reported) {
          const r = await inner.updateReported(reported);
          hooks.onReportAccepted?.(thing, summarize(reported));
          return r;
        },
        onDelta: (listener) => inner.onDelta(listener),
        onStreamRestored: (listener) => inner.onStreamRestored(listener),
        close: () => inner.close(),
      }),
      // The fleet's agents share one silent logger: a desired logLevel is applied as state only.
      setLogLevel: () => undefined,
      ...(deps.readFile ? { readFile: deps.readFile } : {}),
      ...(config.jobs.enabled
        ? {
            jobs: {
              store: jobState.forProcess(),
              clock: deps.ioClock,
              ...(updater ? { updater } : {}),
              reboot: {
                async reboot() {
                  kernelBoot += 1;
                  restart('reboot');
                },
                bootId: () => `${thing}-boot-${kernelBoot}`,
              },
            },
          }
        : {}),
    });
  };

  /**
   * The agent process ends and systemd starts a new one, after the current tick (the runner that
   * asked for it finishes its step first). A stop of the device meanwhile wins.
   */
  const restart = (reason: DeviceRestartReason) => {
    const previous = restarting ?? Promise.resolve();
    restarting = previous.then(async () => {
      await new Promise<void>((r) => setImmediate(r));
      if (stopped) return;
      const old = runtime;
      await old.stop(`restart: ${reason}`).catch(() => undefined);
      const counted = totalsOf(old.agent);
      if (counted) past = past ? addTotals(past, counted) : counted;
      if (stopped) return;
      hooks.onRestart?.(thing, reason);
      runtime = newRuntime();
      await runtime.start().catch(() => hooks.onConnectFailed?.(thing));
    });
  };

  const updater = deps.jobs
    ? createSimulatedUpdater({
        initialVersion: deps.jobs.initialVersion,
        publicKeys: config.update.publicKeys,
        faults: deps.jobs.faults,
        clock: deps.ioClock,
        healthDeadlineMs: deps.jobs.healthDeadlineMs,
        installMs: deps.jobs.installMs,
        restart,
      })
    : undefined;
  let runtime = newRuntime();

  return {
    thingName: thing,
    hardware,
    get agent() {
      return runtime.agent;
    },
    get transport() {
      return runtime.transport;
    },
    updater,
    get restarts() {
      return processes - 1;
    },
    totals() {
      const now = totalsOf(runtime.agent);
      if (!now) return past;
      return past ? addTotals(past, now) : now;
    },
    start: () => runtime.start(),
    async stop(reason) {
      stopped = true;
      updater?.stop();
      await restarting;
      await runtime.stop(reason);
    },
    failSensors() {
      for (const address of Object.values(SIM_ADDRESSES)) hardware.bus.vanish(address);
    },
    async syncShadow() {
      await runtime.agent?.syncShadow();
    },
    async pauseSampling() {
      await runtime.agent?.pauseSampling();
    },
  };
}
