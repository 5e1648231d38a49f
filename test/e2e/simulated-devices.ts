import type { AgentConfigInput } from '@pifleet/device-agent';
import type { MqttProtocol } from '@pifleet/protocol';
import {
  createSimulatedDevice,
  type Logger,
  parseAgentConfig,
  type SimulatedConfigOptions,
  type SimulatedDevice,
  simulatedConfigInput,
  type VirtualClock,
} from '@pifleet/simulator';
import { type DeviceFiles, drive, type RunningCore, until } from '@pifleet/testkit';

/**
 * Simulated devices of one suite: the real agent runtime (createAgent, aws-iot-device-sdk-v2, the
 * SQLite outbox, the real drivers) on simulated hardware in this process, on a virtual clock each.
 * `stopSimulatedDevices()` in `afterAll` stops every one still running.
 */

const running: Array<[SimulatedDevice, VirtualClock]> = [];

/** Starts a device from an agent config, seeded with its thing name, and settles its start on `clock`. */
export async function startSimulatedDevice(
  config: AgentConfigInput,
  clock: VirtualClock,
  logger?: Logger,
): Promise<SimulatedDevice> {
  const parsed = parseAgentConfig(config);
  const device = createSimulatedDevice({
    config: parsed,
    seed: parsed.thingName,
    clock,
    ...(logger ? { logger } : {}),
  });
  running.push([device, clock]);
  await drive(clock, device.start());
  return device;
}

export async function stopSimulatedDevices(): Promise<void> {
  for (const [device, clock] of running.splice(0)) await drive(clock, device.stop()).catch(() => undefined);
}

/**
 * Starts the device `files` describe against the local core over `protocol`, sampling every second
 * on `clock` and reconnecting within 0.1–1 s, and resolves once it is connected. `options` adds to
 * its config (the relay, an outbox path, other sections' overrides) and gives it a logger.
 */
export async function startDeviceOnCore(
  core: RunningCore,
  files: DeviceFiles,
  protocol: MqttProtocol,
  clock: VirtualClock,
  options: Pick<SimulatedConfigOptions, 'relay' | 'outboxPath' | 'overrides'> & { readonly logger?: Logger } = {},
): Promise<SimulatedDevice> {
  const { logger, overrides, ...config } = options;
  const device = await startSimulatedDevice(
    simulatedConfigInput({
      ...files,
      endpoint: core.info.mqtt.host,
      port: core.info.mqtt.port,
      samplingMs: 1_000,
      mqttProtocol: protocol,
      ...config,
      overrides: { mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000 }, ...overrides },
    }),
    clock,
    logger,
  );
  await until(() => device.transport.isConnected, { within: 10_000, what: `${files.thingName} connected` });
  return device;
}
