import {
  type Agent,
  type AgentConfig,
  type Clock,
  createAgent,
  createHardware,
  createIotShadowService,
  createMqttJsTransport,
  createTopicShadowService,
  type Hardware,
  type Logger,
  lastWillFromConfig,
  type ShadowService,
  type Transport,
  toHardwareSpec,
  transportFromConfig,
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
 * One simulated device of a fleet: the real agent core (`createAgent`, the aws-iot-device-sdk-v2
 * transport over MQTT 3.1.1 with mutual TLS, shadow sync over IotShadowClientv2, the real drivers)
 * on seeded simulated hardware, with an in-memory outbox and the host's shared clock. No I/O
 * until `start()`.
 */
export function createFleetDevice(deps: FleetDeviceDeps): FleetDevice {
  const { config, hooks } = deps;
  const thing = config.thingName;
  const hardware = createSimulatedHardware({ seed: deps.seed, clock: deps.clock, busNumber: config.i2cBus });
  let agent: Agent | undefined;
  let transport: Transport | undefined;
  let hw: Hardware | undefined;
  let state: 'idle' | 'running' | 'stopped' = 'idle';

  return {
    thingName: thing,
    hardware,
    get agent() {
      return agent;
    },
    get transport() {
      return transport;
    },
    async start() {
      if (state !== 'idle') return;
      state = 'running';
      hw = createHardware({
        spec: toHardwareSpec(config),
        clock: deps.clock,
        logger: deps.logger,
        ports: hardware.ports,
      });
      await hw.start();
      const crt =
        deps.transport === 'mqtt'
          ? undefined
          : transportFromConfig(config, { bootId: deps.bootId, clock: deps.ioClock, logger: deps.logger });
      const t: Transport =
        crt ??
        createMqttJsTransport({
          endpoint: config.endpoint,
          port: config.port,
          clientId: config.mqtt.clientId,
          certFile: config.certFile,
          keyFile: config.keyFile,
          caFile: config.caFile ?? '',
          keepAliveS: config.mqtt.keepAliveS,
          reconnectMinMs: config.mqtt.reconnectMinMs,
          reconnectMaxMs: config.mqtt.reconnectMaxMs,
          operationTimeoutMs: config.publish.ackTimeoutMs,
          will: lastWillFromConfig(config, { bootId: deps.bootId, clock: deps.ioClock }),
          clock: deps.ioClock,
          logger: deps.logger,
          ...(deps.readFile ? { readFile: deps.readFile } : {}),
        });
      transport = t;
      t.on('connected', (e) => hooks.onConnected?.(thing, e.first));
      t.on('interrupted', () => hooks.onInterrupted?.(thing));
      t.on('connectFailed', () => hooks.onConnectFailed?.(thing));
      const outbox = createMemoryOutbox({ maxBytes: config.outbox.maxBytes, now: deps.clock.now, counters: hooks });
      agent = createAgent({
        config,
        transport: t,
        outbox,
        sensors: hw.sensors,
        outputs: hw.outputs,
        inputs: hw.inputs,
        manageDevices: false,
        clock: deps.clock,
        logger: deps.logger,
        bootId: deps.bootId,
        // The fleet's agents share one silent logger: a desired logLevel is applied as state only.
        setLogLevel: () => undefined,
        createShadow: () => {
          let inner: ShadowService;
          if (crt) {
            const native = crt.native();
            if (!native) throw new Error('transport has no client yet');
            inner = createIotShadowService({
              native,
              thingName: thing,
              requestTimeoutMs: config.shadow.requestTimeoutMs,
              clock: deps.clock,
              logger: deps.logger,
            });
          } else {
            inner = createTopicShadowService({
              transport: t,
              thingName: thing,
              requestTimeoutMs: config.shadow.requestTimeoutMs,
              clock: deps.clock,
              logger: deps.logger,
            });
          }
          const observed: ShadowService = {
            get: () => inner.get(),
            async updateReported(reported) {
              const r = await inner.updateReported(reported);
              hooks.onReportAccepted?.(thing, summarize(reported));
              return r;
            },
            onDelta: (listener) => inner.onDelta(listener),
            close: () => inner.close(),
          };
          return observed;
        },
      });
      await agent.start();
    },
    async stop(reason = 'shutdown') {
      if (state !== 'running') {
        state = 'stopped';
        return;
      }
      state = 'stopped';
      await agent?.stop(reason);
      await hw?.stop().catch(() => undefined);
    },
    failSensors() {
      for (const address of Object.values(SIM_ADDRESSES)) hardware.bus.vanish(address);
    },
    async syncShadow() {
      await agent?.syncShadow();
    },
  };
}
