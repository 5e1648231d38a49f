import {
  type Agent,
  type AgentConfig,
  type Clock,
  createAgentRuntime,
  type Logger,
  type Transport,
} from '@pifleet/device-agent';
import { createSimulatedHardware, SIM_ADDRESSES, type SimulatedHardware } from '../hardware/simulated-device.js';
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
}

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
  const runtime = createAgentRuntime({
    config,
    clock: deps.clock,
    ioClock: deps.ioClock,
    // Shadow request timeouts on the host's shared clock: one timer grid for thousands of devices.
    shadowClock: deps.clock,
    logger: deps.logger,
    bootId: deps.bootId,
    ports: hardware.ports,
    transport: deps.transport ?? 'crt',
    outbox: createMemoryOutbox({ maxBytes: config.outbox.maxBytes, now: deps.clock.now, counters: hooks }),
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
      close: () => inner.close(),
    }),
    // The fleet's agents share one silent logger: a desired logLevel is applied as state only.
    setLogLevel: () => undefined,
    ...(deps.readFile ? { readFile: deps.readFile } : {}),
  });

  return {
    thingName: thing,
    hardware,
    get agent() {
      return runtime.agent;
    },
    get transport() {
      return runtime.transport;
    },
    start: () => runtime.start(),
    stop: (reason) => runtime.stop(reason),
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
