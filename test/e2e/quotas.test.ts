import type { AgentConfigInput } from '@pifleet/device-agent';
import {
  createSimulatedDevice,
  parseAgentConfig,
  type SimulatedDevice,
  simulatedConfigInput,
} from '@pifleet/simulator';
import {
  type DeviceFiles,
  desire,
  part,
  provisionDevice,
  type RunningCore,
  TelemetryLog,
  until,
  waitForShadow,
  waitForStored,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProtocolCase, protocolTag } from './protocols.js';
import { coreForFile, type LimitedCore, startLimitedCore } from './suite-core.js';

/**
 * The agent never trips IoT Core's quotas at its configured rates. Against the local core with its
 * default limits (`aws`: IoT Core's published quotas, every breach counted), two agents per case
 * run in real time (the system clock: the publisher's pacing is measured against the broker's own
 * clock), on each MQTT client and version: one with the agent's defaults, one at the fastest
 * rates its config validation allows (100 ms sampling of three sensors, one reading a batch: 30
 * batches a second wanting out, 50 publishes a second, 64 in flight, reconnects from 100 ms, a
 * report every 10 s). They publish, take desired-state changes, lose the core to a restart and
 * reconnect to it; afterwards every throttle counter of both core instances is zero, the agents
 * counted no throttling either, and every reading sampled is stored.
 */

let dir: string;
let core: RunningCore;
const telemetry = new TelemetryLog();
const devices: SimulatedDevice[] = [];

const suite = coreForFile(
  'e2e-quotas',
  (started) => {
    ({ core, dir } = started);
  },
  async () => {
    for (const d of devices.splice(0)) await d.stop().catch(() => undefined);
  },
  { telemetry },
);

const FASTEST: Partial<AgentConfigInput> = {
  mqtt: { keepAliveS: 30, reconnectMinMs: 100, reconnectMaxMs: 1_000 },
  batch: { maxReadings: 1, maxAgeMs: 100 },
  publish: { maxPerSecond: 50, maxInFlight: 64, maxBytesPerSecond: 384 * 1024, ackTimeoutMs: 1_000 },
  shadow: { reportIntervalMs: 10_000, requestTimeoutMs: 1_000 },
};

/** Breaches counted by the core, by quota: only those that are not zero (so a failure names them). */
const breaches = (c: RunningCore) => Object.entries(c.core.services.throttles.snapshot()).filter(([, n]) => n > 0);

async function startDevice(
  files: DeviceFiles,
  config: Partial<Parameters<typeof simulatedConfigInput>[0]>,
  transport: 'crt' | 'mqtt',
) {
  const d = createSimulatedDevice({
    config: parseAgentConfig(
      simulatedConfigInput({
        ...files,
        endpoint: '127.0.0.1',
        port: core.info.mqtt.port,
        relay: true,
        ...config,
      }),
    ),
    seed: files.thingName,
    transport,
  });
  devices.push(d);
  await d.start();
  return d;
}

const sensorIds = ['env', 'light', 'soil'];

const protocolCase = (protocol: ProtocolCase['protocol']): ProtocolCase => ({ protocol, tag: protocolTag(protocol) });

/**
 * Each client and each MQTT version once, not all four pairs: a case runs 20 s in real time (the
 * default agent's first batch is sealed at its 10 s batch age), and what differs between clients
 * (connect spacing after a refusal) has its own suite for all four pairs
 * (device-agent/test/transport/connect-spacing.test.ts); the pacing is the publisher's, the same
 * on every transport. crt over MQTT 5 is what a Pi runs.
 */
const CLIENT_CASES = [
  { ...protocolCase('5'), transport: 'crt' as const },
  { ...protocolCase('3.1.1'), transport: 'mqtt' as const },
];

describe.each(CLIENT_CASES)(
  'the agent inside the quotas: $transport over MQTT $protocol',
  ({ protocol, tag, transport }) => {
    it('at its defaults and at its fastest rates: publishes, desired changes and a core restart trip no quota; every reading is stored', async () => {
      const slowThing = `quota-default-${transport}-${tag}`;
      const fastThing = `quota-fastest-${transport}-${tag}`;
      const slow = await startDevice(
        await provisionDevice(core, slowThing, dir),
        { mqttProtocol: protocol },
        transport,
      );
      const fast = await startDevice(
        await provisionDevice(core, fastThing, dir),
        {
          mqttProtocol: protocol,
          samplingMs: 100,
          overrides: { ...FASTEST, mqtt: { ...FASTEST.mqtt, protocol } },
        },
        transport,
      );
      const both = [slow, fast];
      await until(() => both.every((d) => d.transport.isConnected), { within: 15_000, what: 'both connected' });
      await telemetry.waitFor(() => telemetry.unique(fastThing).length >= 60, 15_000, '60 batches of the fast agent');

      // Desired changes, at an operator's pace (4 a second: with the agents' reports, well inside
      // the 20 shadow requests a second per thing).
      for (const [i, on] of [true, false, true].entries()) {
        await desire(core, slowThing, { outputs: { relay: on } });
        await desire(core, fastThing, { sampling: { env: 150 + i * 50 } });
        await new Promise((r) => setTimeout(r, 250));
      }
      await waitForShadow(core, slowThing, (doc) => part<{ relay?: boolean }>(doc, 'outputs').relay === true);
      await waitForShadow(core, fastThing, (doc) => part<{ env?: number }>(doc, 'sampling').env === 250);

      // The core goes away and comes back on the same ports: every agent reconnects, no faster than
      // one CONNECT a second per client id.
      const beforeRestart = breaches(core);
      core = await suite.restart(() =>
        until(() => both.every((d) => !d.transport.isConnected), { within: 10_000, what: 'both disconnected' }),
      );
      await until(() => both.every((d) => d.transport.isConnected), { within: 20_000, what: 'both reconnected' });
      const sealedAtReconnect = fast.status().sealedBatches;
      await telemetry.waitFor(
        () => telemetry.unique(fastThing).length >= sealedAtReconnect + 30,
        15_000,
        'the fast agent publishing after the restart',
      );
      await desire(core, slowThing, { outputs: { relay: false } });
      // The fast agent slows down so that its outbox empties before it stops (a memory outbox).
      await desire(core, fastThing, { sampling: Object.fromEntries(sensorIds.map((id) => [id, 60_000])) });
      await waitForShadow(core, slowThing, (doc) => part<{ relay?: boolean }>(doc, 'outputs').relay === false);
      await waitForShadow(core, fastThing, (doc) => part<{ env?: number }>(doc, 'sampling').env === 60_000);
      // The default agent seals its first batch after 10 s (its batch age).
      await telemetry.waitFor(() => telemetry.unique(slowThing).length >= 1, 15_000, 'a batch of the default agent');
      await until(() => both.every((d) => d.status().outbox.depth === 0 && d.status().inFlight === 0), {
        within: 10_000,
        what: 'outboxes empty',
      });

      const throttledByAgents = both.map((d) => d.status().throttled);
      const generated = both.map((d) => d.status().readings);
      for (const d of both) {
        await d.stop();
        devices.splice(devices.indexOf(d), 1);
      }

      expect(beforeRestart).toEqual([]);
      expect(breaches(core)).toEqual([]);
      expect(throttledByAgents).toEqual([
        { publishes: 0, unacknowledged: 0, connects: 0, shadow: 0 },
        { publishes: 0, unacknowledged: 0, connects: 0, shadow: 0 },
      ]);
      // Nothing lost: every reading sampled is stored (the store drops duplicates by bootId and seq).
      expect(await waitForStored(core, slowThing, generated[0] ?? 0)).toBe(generated[0]);
      expect(await waitForStored(core, fastThing, generated[1] ?? 0)).toBe(generated[1]);
      expect(generated[1]).toBeGreaterThanOrEqual(90);
    }, 120_000);
  },
);

/**
 * Over a quota: a core whose publish quota per connection is 10 a second (a limits file, as
 * `pifleet-local-core --limits-file` takes it) and agents sealing 30 batches a second. MQTT 5: the
 * broker answers PUBACK 0x97, the agent keeps the batch, backs off and counts it. MQTT 3.1.1: the
 * broker sends no PUBACK (as IoT Core), the agent's publish timeout resends it after a backoff and
 * counts it unacknowledged. Either way, once the readings come slower than the quota, every one is
 * stored, once.
 */
describe('the agent over a quota: kept, backed off, counted, stored once', () => {
  let limited: LimitedCore;
  const overDevices: SimulatedDevice[] = [];

  beforeAll(async () => {
    limited = await startLimitedCore('e2e-quotas-over', { publishesPerSecondPerConnection: 10 });
  });

  afterAll(async () => {
    for (const d of overDevices.splice(0)) await d.stop().catch(() => undefined);
    await limited?.stop();
  });

  // mqtt.js over 3.1.1 is left out here: it keeps every publish the broker never acknowledged in its
  // outgoing store until a reconnect, so its backlog drains in about 70 s instead of 6–8 s, and it is
  // the fleet runner's client, not a Pi's. The agent's side of a 3.1.1 throttle (no PUBACK) is the
  // same on every client: device-agent/test/app/telemetry-refused.test.ts, and crt over 3.1.1 here.
  describe.each([
    { ...protocolCase('5'), transport: 'crt' as const },
    { ...protocolCase('3.1.1'), transport: 'crt' as const },
    { ...protocolCase('5'), transport: 'mqtt' as const },
  ])('$transport over MQTT $protocol', ({ protocol, tag, transport }) => {
    it('throttled publishes are counted by the agent and the core, and every reading is stored once', async () => {
      const thing = `quota-over-${transport}-${tag}`;
      const { withCore: core, core: over, info: overInfo } = limited;
      const files = await provisionDevice(core, thing, limited.dir);
      const before = over.services.throttles.snapshot().publishesPerSecondPerConnection;
      const d = createSimulatedDevice({
        config: parseAgentConfig(
          simulatedConfigInput({
            ...files,
            endpoint: '127.0.0.1',
            port: overInfo.mqtt.port,
            samplingMs: 100,
            mqttProtocol: protocol,
            overrides: {
              batch: { maxReadings: 1, maxAgeMs: 100 },
              publish: { maxPerSecond: 50, maxInFlight: 8, ackTimeoutMs: 1_000 },
              shadow: { requestTimeoutMs: 3_000 },
            },
          }),
        ),
        seed: thing,
        transport,
      });
      overDevices.push(d);
      await d.start();
      await until(() => d.transport.isConnected, { within: 15_000, what: 'connected' });
      // MQTT 5: PUBACK 0x97; 3.1.1: no PUBACK, so the publish timeout.
      const counted = () => (protocol === '5' ? d.status().throttled.publishes : d.status().throttled.unacknowledged);
      await until(() => counted() > 0 && d.status().sealedBatches >= 60, { within: 20_000, what: 'throttled' });
      // The readings slow down to under the quota (an operator's desired sampling: the delta comes
      // from the broker, which is not throttled): the backlog drains at the rate the agent learned.
      await desire(core, thing, { sampling: { env: 60_000, light: 60_000, soil: 60_000 } });
      await until(() => d.status().actual.sampling.env === 60_000, { within: 15_000, what: 'sampling slowed' });
      await until(() => d.status().outbox.depth === 0 && d.status().inFlight === 0, {
        within: 75_000,
        what: 'backlog drained',
      });
      const status = d.status();
      await d.stop();
      overDevices.splice(overDevices.indexOf(d), 1);

      expect(counted()).toBeGreaterThan(0);
      if (protocol === '5') expect(status.throttled.unacknowledged).toBe(0);
      expect(status.throttled.connects).toBe(0);
      expect((over.services.throttles.snapshot().publishesPerSecondPerConnection ?? 0) - (before ?? 0)).toBeGreaterThan(
        0,
      );
      // Nothing lost, nothing stored twice (the store keeps one copy per bootId and seq).
      expect(await waitForStored(core, thing, status.readings)).toBe(status.readings);
    }, 150_000);
  });
});
