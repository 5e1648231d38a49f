import type { AgentConfigInput } from '@pifleet/device-agent';
import {
  createSimulatedDevice,
  type Logger,
  parseAgentConfig,
  type SimulatedDevice,
  type VirtualClock,
} from '@pifleet/simulator';
import { drive } from '@pifleet/testkit';

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
