import path from 'node:path';
import { openOutbox, sealBatch } from '@pifleet/device-agent';
import { appTopics, type MqttProtocol, type Reading } from '@pifleet/protocol';
import { createVirtualClock, type SimulatedDevice, simulatedConfigInput, type VirtualClock } from '@pifleet/simulator';
import {
  type DeviceFiles,
  provisionDevice,
  type RunningCore,
  removeDir,
  startCore,
  tempDir,
  until,
  waitForStored,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';
import { startSimulatedDevice, stopSimulatedDevices } from './simulated-devices.js';

/**
 * Telemetry batch v2 end to end: the real agent runtime (aws-iot-device-sdk-v2, the SQLite outbox,
 * the real drivers on simulated hardware) publishes v2 by default; the local IoT Core's ingest
 * rule stores every reading once, the alert rule raises an alert for a hot v2 group, and batches
 * an agent sealed as v1 before an upgrade (still in its outbox) are published and stored as well.
 */

let dir: string;
let core: RunningCore;

beforeAll(async () => {
  dir = tempDir('e2e-telemetry-v2');
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  await stopSimulatedDevices();
  await core?.stop();
  removeDir(dir);
});

/** Every payload published on a topic, parsed, in arrival order. */
async function record(topic: string): Promise<{ payloads: Record<string, unknown>[]; stop: () => Promise<void> }> {
  const payloads: Record<string, unknown>[] = [];
  const stop = await core.core.services.broker.bus.subscribe(topic, (m) => {
    payloads.push(JSON.parse(m.payload.toString('utf8')) as Record<string, unknown>);
  });
  return { payloads, stop };
}

async function device(files: DeviceFiles, clock: VirtualClock, protocol: MqttProtocol): Promise<SimulatedDevice> {
  const d = await startSimulatedDevice(
    simulatedConfigInput({
      ...files,
      mqttProtocol: protocol,
      endpoint: core.info.mqtt.host,
      port: core.info.mqtt.port,
      samplingMs: 1_000,
      outboxPath: path.join(dir, `${files.thingName}.outbox.db`),
      overrides: {
        batch: { maxReadings: 6, maxAgeMs: 3_600_000 },
        mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000 },
      },
    }),
    clock,
  );
  await until(() => d.transport.isConnected, { within: 10_000, what: `${files.thingName} connected` });
  return d;
}

async function seconds(clock: VirtualClock, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await clock.advance(1_000);
  await clock.advance(200);
}

describe.each(PROTOCOL_CASES)('telemetry batch v2 over MQTT $protocol', ({ protocol, tag }) => {
  it('the agent publishes v2 batches, and the core stores each reading once', async () => {
    const thing = `e2e-v2-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const wire = await record(appTopics.telemetry(thing));
    const clock = createVirtualClock();
    const d = await device(files, clock, protocol);
    await seconds(clock, 10);
    // 3 sensors × 10 s = 30 readings, sealed 6 at a time.
    expect(await waitForStored(core, thing, 30)).toBe(30);
    await until(() => d.status().outbox.depth === 0, { within: 5_000, what: 'outbox drained' });
    await wire.stop();
    expect(wire.payloads.length).toBeGreaterThanOrEqual(5);
    for (const p of wire.payloads) {
      expect(p).toMatchObject({ v: 2, thingName: thing, bootId: d.bootId });
      expect(p).not.toHaveProperty('readings');
      expect(Array.isArray(p.sensors)).toBe(true);
    }
    // Resends included, every reading is stored once, and what is stored is what was sampled.
    expect(await core.core.services.telemetry.countReadings(thing)).toBe(30);
    const page = await core.core.services.telemetry.query({ thingName: thing, from: 0, to: 2 ** 52, limit: 100 });
    expect(new Set(page.items.map((r) => `${r.sensor}@${r.ts}`)).size).toBe(30);
    expect(page.items.filter((r) => r.sensor === 'env').every((r) => typeof r.metrics.temperature === 'number')).toBe(
      true,
    );
  });

  it('batches sealed as v1 before an upgrade still publish; a hot v2 batch and a hot v1 batch each raise an alert', async () => {
    const thing = `e2e-v2-upgrade-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const now = Date.now();
    const hot = (ts: number, temperature: number): Reading => ({ sensor: 'env', ts, metrics: { temperature } });
    // What the outbox holds when the new agent first starts: the old agent's v1 batches (one hot),
    // and a v2 batch with a hot reading the new agent sealed before it was restarted.
    const { outbox } = openOutbox({ path: path.join(dir, `${thing}.outbox.db`), maxBytes: 1024 * 1024 });
    const seal = (bootId: string, seq: number, readings: Reading[], encoding: 'v1' | 'v2') =>
      outbox.put(sealBatch({ thingName: thing, bootId, seq, readings, now, encoding }));
    seal('boot-before-upgrade', 1, [hot(now - 3000, 21), hot(now - 2000, 22)], 'v1');
    seal('boot-before-upgrade', 2, [hot(now - 1000, 41.5)], 'v1');
    seal('boot-after-upgrade', 1, [hot(now - 900, 20), hot(now - 800, 38.25), hot(now - 700, 20.5)], 'v2');
    outbox.close();

    const alerts = await record(appTopics.alerts(thing));
    const clock = createVirtualClock();
    const d = await device(files, clock, protocol);
    await seconds(clock, 1);
    // The 6 stored readings, plus the 3 sensors' first samples once sealed (6 a batch).
    expect(await waitForStored(core, thing, 6)).toBeGreaterThanOrEqual(6);
    await until(() => alerts.payloads.length >= 2, { within: 10_000, what: 'two alerts' });
    await until(() => d.status().outbox.depth === 0, { within: 5_000, what: 'outbox drained' });
    await alerts.stop();

    const page = await core.core.services.telemetry.query({
      thingName: thing,
      from: now - 10_000,
      to: now,
      sensor: 'env',
      limit: 100,
    });
    expect(page.items.map((r) => [r.bootId, r.seq, r.metrics.temperature]).sort()).toEqual(
      [
        ['boot-after-upgrade', 1, 20],
        ['boot-after-upgrade', 1, 20.5],
        ['boot-after-upgrade', 1, 38.25],
        ['boot-before-upgrade', 1, 21],
        ['boot-before-upgrade', 1, 22],
        ['boot-before-upgrade', 2, 41.5],
      ].sort(),
    );
    const v1Alert = alerts.payloads.find((a) => a.bootId === 'boot-before-upgrade');
    const v2Alert = alerts.payloads.find((a) => a.bootId === 'boot-after-upgrade');
    expect(v1Alert).toMatchObject({ thingName: thing, seq: 2, readings: [{ sensor: 'env', temperature: 41.5 }] });
    expect(v2Alert).toMatchObject({
      thingName: thing,
      seq: 1,
      t0: now - 900,
      sensors: [{ sensor: 'env', temperature: 38.25, dt: [0, 100, 200], temperatures: [20, 38.25, 20.5] }],
    });
    expect(alerts.payloads).toHaveLength(2);
  });
});
