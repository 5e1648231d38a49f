import {
  type Agent,
  type AgentConfig,
  type AgentConfigInput,
  type AgentStatus,
  type Clock,
  ConfigError,
  createAgentRuntime,
  createSystemClock,
  loadConfig,
  type OutboxRecovery,
  type Transport,
} from '@pifleet/device-agent';
import type { MqttProtocol } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';
import { createSimulatedHardware, SIM_ADDRESSES, type SimulatedHardware } from '../hardware/simulated-device.js';
import { type Logger, silentLogger } from '../logger.js';

/** BCM lines of the simulated device's relay and of the input wired back from it. */
export const SIM_LINES = { relay: 17, relayFeedback: 27, button: 22 } as const;

/** Sensor sets a simulated device can carry (all on the simulated bus-1 chips and GPIO lines). */
export type SimulatedSensorSet = 'standard' | 'bench';

export interface SimulatedConfigOptions {
  readonly thingName: string;
  readonly endpoint: string;
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /** `:memory:` (default: no durability, for fleets) or a file path. */
  readonly outboxPath?: string;
  readonly outboxMaxBytes?: number;
  /** Sampling interval of every sensor (default 10 s, the agent's default). */
  readonly samplingMs?: number;
  /**
   * `standard`: BME280 `env`, BH1750 `light`, ADS1115 `soil` (moisture + light divider).
   * `bench`: those plus two digital inputs (`relay_fb`, `button`): five sensors.
   */
  readonly sensors?: SimulatedSensorSet;
  /** Adds the `relay` output (BCM 17); with `bench` sensors it is wired to `relay_fb` (BCM 27). */
  readonly relay?: boolean;
  /** The agent's MQTT version; default `5`, as on a real Pi (the local IoT Core serves 5 and 3.1.1). */
  readonly mqttProtocol?: MqttProtocol;
  /** Merged over the generated config (top-level keys replace, `batch`/`publish`/… merge one level). */
  readonly overrides?: Partial<AgentConfigInput>;
}

/** The `pifleet-agent` config input of a simulated device (hardware `simulated`). */
export function simulatedConfigInput(o: SimulatedConfigOptions): AgentConfigInput {
  const intervalMs = o.samplingMs ?? 10_000;
  const sensors: NonNullable<AgentConfigInput['sensors']> = [
    { id: 'env', driver: 'bme280', address: SIM_ADDRESSES.bme280, intervalMs },
    { id: 'light', driver: 'bh1750', address: SIM_ADDRESSES.bh1750, intervalMs },
    {
      id: 'soil',
      driver: 'ads1115',
      address: SIM_ADDRESSES.ads1115,
      intervalMs,
      channels: [
        { name: 'moisture', input: 0 },
        { name: 'ldr', input: 1 },
      ],
    },
  ];
  if (o.sensors === 'bench') {
    sensors.push(
      { id: 'relay_fb', driver: 'digital-input', line: SIM_LINES.relayFeedback, debounceMs: 0, intervalMs },
      { id: 'button', driver: 'digital-input', line: SIM_LINES.button, debounceMs: 20, intervalMs },
    );
  }
  const base: AgentConfigInput = {
    thingName: o.thingName,
    endpoint: o.endpoint,
    port: o.port,
    certFile: o.certFile,
    keyFile: o.keyFile,
    caFile: o.caFile,
    hardware: 'simulated',
    mqtt: { protocol: o.mqttProtocol ?? '5' },
    sensors,
    outputs: o.relay ? [{ id: 'relay', line: SIM_LINES.relay }] : [],
    outbox: {
      path: o.outboxPath ?? ':memory:',
      ...(o.outboxMaxBytes === undefined ? {} : { maxBytes: o.outboxMaxBytes }),
    },
  };
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(o.overrides ?? {})) {
    const current = merged[key];
    merged[key] =
      isPlainObject(current) && isPlainObject(value) ? { ...current, ...value } : (value as unknown as object);
  }
  return merged as AgentConfigInput;
}

/** Validates a config input into the agent's frozen config; throws a ConfigError listing every issue. */
export function parseAgentConfig(input: AgentConfigInput): AgentConfig {
  const r = loadConfig({ fileText: JSON.stringify(input) });
  if (!r.ok) throw new ConfigError(r.issues);
  return r.value;
}

export interface SimulatedDeviceDeps {
  /** A validated agent config with `hardware: 'simulated'` (see {@link simulatedConfigInput}). */
  readonly config: AgentConfig;
  /** Seeds the device's environment (temperature, humidity, light, soil). */
  readonly seed: string | number;
  /** Time of sampling, batching, publishing and the simulated chips (a virtual clock in tests). */
  readonly clock?: Clock;
  /** Time of the MQTT reconnect backoff and shadow request timeouts (default: the system clock). */
  readonly ioClock?: Clock;
  readonly logger?: Logger;
  readonly bootId?: string;
  /** The MQTT client: `crt` (default, the device SDK, as a Pi runs) or `mqtt` (mqtt.js, as fleets run). */
  readonly transport?: 'crt' | 'mqtt';
}

export interface SimulatedDevice {
  readonly thingName: string;
  readonly config: AgentConfig;
  readonly bootId: string;
  /** The simulated chips and GPIO (drive inputs, watch the relay line). */
  readonly hardware: SimulatedHardware;
  /** Opens the outbox and hardware, starts the agent (connecting in the background). */
  start(): Promise<void>;
  /** The agent's SIGTERM path, then releases the hardware. */
  stop(reason?: string): Promise<void>;
  status(): AgentStatus;
  /** What opening the outbox found (a damaged file moved aside), once started. */
  readonly outboxRecovery: OutboxRecovery | undefined;
  /** The running agent; throws before start(). */
  readonly agent: Agent;
  /** The MQTT transport; throws before start(). */
  readonly transport: Transport;
}

/**
 * One device: the agent as `pifleet-agent` builds it (`createAgentRuntime`: the aws-iot-device-sdk-v2
 * transport, shadow sync over IotShadowClientv2, the SQLite outbox, the real drivers) on simulated
 * hardware, its relay wired back to an input. Holds no module-level state, so a process can run as
 * many as it has memory for. No I/O until start().
 */
export function createSimulatedDevice(deps: SimulatedDeviceDeps): SimulatedDevice {
  const { config } = deps;
  if (config.hardware !== 'simulated') {
    throw new ConfigError([{ path: 'hardware', message: 'a simulated device needs hardware "simulated"' }]);
  }
  const clock = deps.clock ?? createSystemClock();
  const hardware = createSimulatedHardware({ seed: deps.seed, clock, busNumber: config.i2cBus });
  if (config.outputs.some((o) => o.line === SIM_LINES.relay)) {
    // The relay's contact is read back on an input, as a real installation would wire it.
    hardware.gpio.wire(SIM_LINES.relay, SIM_LINES.relayFeedback);
  }
  const runtime = createAgentRuntime({
    config,
    clock,
    ioClock: deps.ioClock ?? createSystemClock(),
    logger: deps.logger ?? silentLogger(),
    ...(deps.bootId ? { bootId: deps.bootId } : {}),
    ports: hardware.ports,
    ...(deps.transport ? { transport: deps.transport } : {}),
    // Without a logger there is nothing to re-level: a desired logLevel must not wake a silent logger.
    ...(deps.logger ? {} : { setLogLevel: () => undefined }),
  });

  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new SimulatorError('SIM_NOT_STARTED', `${what} exists only after start()`);
    return v;
  };

  return {
    thingName: config.thingName,
    config,
    bootId: runtime.bootId,
    hardware,
    get outboxRecovery() {
      return runtime.outboxRecovery;
    },
    get agent() {
      return need(runtime.agent, 'the agent');
    },
    get transport() {
      return need(runtime.transport, 'the transport');
    },
    start: () => runtime.start(),
    stop: (reason) => runtime.stop(reason),
    status() {
      return need(runtime.agent, 'the agent').status();
    },
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
