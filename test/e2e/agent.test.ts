import path from 'node:path';
import type { AgentConfigInput } from '@pifleet/device-agent';
import type { MqttProtocol } from '@pifleet/protocol';
import { createVirtualClock, type SimulatedDevice, simulatedConfigInput, type VirtualClock } from '@pifleet/simulator';
import {
  type DeviceFiles,
  desire,
  type NetworkCut,
  part,
  provisionDevice,
  type RunningCore,
  removeDir,
  startCore,
  startRelay,
  tempDir,
  until,
  waitForShadow,
  waitForStored,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';
import { startSimulatedDevice, stopSimulatedDevices } from './simulated-devices.js';

/**
 * The real agent core (createAgent + aws-iot-device-sdk-v2 over mutual TLS + IotShadowClientv2 +
 * SQLite outbox + real drivers) on simulated hardware, against the composed local IoT Core.
 * Sampling runs on a virtual clock, so the number of readings is exact; network and shadow
 * requests run in real time. Every case runs over MQTT 5 (the agent's default, what it speaks to
 * AWS IoT Core) and over MQTT 3.1.1 (still a config option), against the same core.
 */

let dir: string;
let core: RunningCore;
const relays: NetworkCut[] = [];

beforeAll(async () => {
  dir = tempDir('e2e-agent');
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  await stopSimulatedDevices();
  for (const r of relays) await r.close();
  await core?.stop();
  removeDir(dir);
});

async function device(
  files: DeviceFiles,
  clock: VirtualClock,
  options: { protocol: MqttProtocol; port?: number; relay?: boolean; overrides?: Partial<AgentConfigInput> },
): Promise<SimulatedDevice> {
  const d = await startSimulatedDevice(
    simulatedConfigInput({
      ...files,
      mqttProtocol: options.protocol,
      endpoint: core.info.mqtt.host,
      port: options.port ?? core.info.mqtt.port,
      samplingMs: 1_000,
      relay: options.relay ?? true,
      outboxPath: path.join(dir, `${files.thingName}.outbox.db`),
      overrides: {
        batch: { maxReadings: 6, maxAgeMs: 3_600_000 },
        mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000 },
        shadow: { requestTimeoutMs: 5_000 },
        ...options.overrides,
      },
    }),
    clock,
  );
  await until(() => d.transport.isConnected, { within: 10_000, what: `${files.thingName} connected` });
  return d;
}

/**
 * Advances the agent's clock one second at a time (each sensor samples once per second), plus
 * 200 ms for the conversions of the last samples to finish.
 */
async function seconds(clock: VirtualClock, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await clock.advance(1_000);
  await clock.advance(200);
}

describe.each(PROTOCOL_CASES)(
  'agent end to end over MQTT $protocol (local IoT Core, simulated hardware)',
  ({ protocol, tag }) => {
    it('publishes every reading in batches that arrive on the broker with thing, boot id and sequence', async () => {
      const thing = `e2e-telemetry-${tag}`;
      const files = await provisionDevice(core, thing, dir);
      const clock = createVirtualClock();
      const d = await device(files, clock, { protocol });
      await seconds(clock, 10);
      // 3 sensors × 10 s = 30 readings, sealed 6 at a time.
      await core.telemetry.waitFor(() => core.telemetry.readings(thing) >= 30, 15_000, '30 readings');
      const batches = core.telemetry.unique(thing);
      // Every sequence number once. Not their order: IoT Core does not promise that messages arrive
      // in the order they were published, and aedes handles the packets of one socket read
      // concurrently, so neither does the local core.
      expect(batches.map((b) => b.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
      expect(new Set(batches.map((b) => b.bootId))).toEqual(new Set([d.bootId]));
      const readings = batches.flatMap((b) => b.readings);
      expect(readings).toHaveLength(30);
      expect(new Set(readings.map((r) => `${r.sensor}@${r.ts}`)).size).toBe(30);
      const env = readings.filter((r) => r.sensor === 'env');
      expect(env).toHaveLength(10);
      for (const r of env) {
        expect(r.metrics.temperature).toBeGreaterThan(-10);
        expect(r.metrics.temperature).toBeLessThan(45);
        expect(r.metrics.humidity).toBeGreaterThan(0);
        expect(r.metrics.pressure).toBeGreaterThan(800);
      }
      expect(readings.filter((r) => r.sensor === 'light').every((r) => typeof r.metrics.illuminance === 'number')).toBe(
        true,
      );
      expect(readings.filter((r) => r.sensor === 'soil').every((r) => typeof r.metrics.moisture === 'number')).toBe(
        true,
      );
      await until(() => d.status().outbox.depth === 0, { within: 5_000, what: 'outbox drained' });
      expect(d.status().outbox.sent).toBe(5);
      // The ingest rule stored them (the same handler as the Lambda in AWS).
      expect(await waitForStored(core, thing, 30)).toBe(30);
    });

    it('applies a desired change from UpdateThingShadow and reports the state it reached', async () => {
      const thing = `e2e-desired-${tag}`;
      const files = await provisionDevice(core, thing, dir);
      const clock = createVirtualClock();
      const d = await device(files, clock, { protocol });
      await waitForShadow(core, thing, (s) => s.state.reported?.outputs !== undefined);
      expect(d.hardware.gpio.level(17)).toBe(0);

      const { version } = await desire(core, thing, {
        outputs: { relay: true },
        sampling: { env: 2_000 },
        batch: { maxReadings: 5 },
      });
      const doc = await waitForShadow(
        core,
        thing,
        (s) =>
          part<Record<string, boolean>>(s, 'outputs').relay === true &&
          part<Record<string, number>>(s, 'sampling').env === 2_000 &&
          s.state.delta === undefined,
      );
      expect(doc.version).toBeGreaterThan(version);
      expect(d.hardware.gpio.level(17)).toBe(1);
      expect(part<{ maxReadings: number }>(doc, 'batch').maxReadings).toBe(5);
      expect(d.status().actual.sampling.env).toBe(2_000);

      // The new interval is what the sampler now does: in 10 s, env samples 5 times, light and soil 10,
      // sealed 5 readings at a time.
      const before = core.telemetry.unique(thing).length;
      await seconds(clock, 10);
      await core.telemetry.waitFor(
        () => core.telemetry.readings(thing) >= 25,
        10_000,
        'readings at the new sampling rate',
      );
      const readings = core.telemetry.unique(thing).flatMap((b) => b.readings);
      expect(readings.filter((r) => r.sensor === 'env')).toHaveLength(5);
      expect(readings.filter((r) => r.sensor === 'light')).toHaveLength(10);
      expect(
        core.telemetry
          .unique(thing)
          .slice(before)
          .every((b) => b.readings.length === 5),
      ).toBe(true);
    });

    it('rejects a bad desired value into reported.rejected, applies the good keys beside it, and runs on', async () => {
      const thing = `e2e-rejected-${tag}`;
      const files = await provisionDevice(core, thing, dir);
      const clock = createVirtualClock();
      const d = await device(files, clock, { protocol });
      await waitForShadow(core, thing, (s) => s.state.reported?.outputs !== undefined);

      await desire(core, thing, {
        sampling: { env: 5, nosuch: 1_000 },
        outputs: { relay: true },
        logLevel: 'loud',
      });
      const doc = await waitForShadow(core, thing, (s) => {
        const rejected = s.state.reported?.rejected as Record<string, unknown> | undefined;
        return rejected?.['sampling.env'] !== undefined && rejected.logLevel !== undefined;
      });
      const rejected = doc.state.reported?.rejected as Record<string, { value: unknown; reason: string }>;
      expect(rejected['sampling.env']?.value).toBe(5);
      expect(rejected['sampling.env']?.reason).toMatch(/100/);
      expect(rejected['sampling.nosuch']?.reason).toMatch(/sensor/);
      expect(rejected.logLevel?.value).toBe('loud');
      expect(part<Record<string, boolean>>(doc, 'outputs').relay).toBe(true);
      expect(part<Record<string, number>>(doc, 'sampling').env).toBe(1_000);
      expect(d.hardware.gpio.level(17)).toBe(1);

      // Still sampling and publishing.
      await seconds(clock, 4);
      await core.telemetry.waitFor(() => core.telemetry.readings(thing) >= 12, 10_000, 'readings after reject');

      // Fixing the value clears the rejection.
      await desire(core, thing, { sampling: { env: 3_000, nosuch: null }, logLevel: 'debug' });
      const fixed = await waitForShadow(core, thing, (s) => {
        const r = s.state.reported?.rejected as Record<string, unknown> | undefined;
        return part<Record<string, number>>(s, 'sampling').env === 3_000 && r?.['sampling.env'] === undefined;
      });
      expect(fixed.state.reported?.logLevel).toBe('debug');
    });

    it('applies a delta it missed while offline once it reconnects', async () => {
      const thing = `e2e-offline-${tag}`;
      const files = await provisionDevice(core, thing, dir);
      const relay = await startRelay(core.info.mqtt.port);
      relays.push(relay);
      const clock = createVirtualClock();
      const d = await device(files, clock, { protocol, port: relay.port });
      await waitForShadow(core, thing, (s) => s.state.reported?.outputs !== undefined);

      relay.down();
      await until(() => !d.transport.isConnected, { within: 10_000, what: 'connection lost' });
      await seconds(clock, 4); // sampling goes on offline; batches wait in the outbox
      await desire(core, thing, { outputs: { relay: true }, sampling: { light: 5_000 } });
      // No delta reaches the device while it is cut off.
      expect(d.hardware.gpio.level(17)).toBe(0);

      relay.up();
      const doc = await waitForShadow(
        core,
        thing,
        (s) => part<Record<string, boolean>>(s, 'outputs').relay === true && s.state.delta === undefined,
        20_000,
      );
      expect(part<Record<string, number>>(doc, 'sampling').light).toBe(5_000);
      expect(d.hardware.gpio.level(17)).toBe(1);
      // What was sampled offline arrives after the reconnect.
      await core.telemetry.waitFor(() => core.telemetry.readings(thing) >= 12, 10_000, 'offline readings');
    });
  },
);
