import { readFileSync } from 'node:fs';
import { appTopics, RECOMMENDED_POLICY_NAME, recommendedDevicePolicy } from '@pifleet/protocol';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import type { TelemetryStore } from '../../src/ports/telemetry-store.js';
import { killAll, launchCore } from '../../src/testing/core-process.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { closeQuietly, deviceConnection, within } from '../broker/fixtures.js';
import { iotClient, removeDir, startCore, tempDir } from '../http/harness.js';
import { type ProvisionedThing, provisionThing } from './harness.js';

/**
 * What a PUBACK promises: the local IoT Core acknowledges a device's QoS 1 telemetry only once the
 * rules have run on it (the batch is in the telemetry store), so the device may delete it. Checked
 * the hard way: kill -9 of the real bin right after a burst of PUBACKs, and a graceful stop while a
 * device keeps publishing — then every acknowledged batch must be in the store.
 */

const dirs: string[] = [];
const connections: mqtt.MqttClientConnection[] = [];

afterAll(async () => {
  await Promise.all(connections.map((c) => closeQuietly(c)));
  killAll();
  for (const dir of dirs) removeDir(dir);
});

const T0 = 1_700_000_000_000;

/** `n` readings of batch `seq`, each at its own time, so a reading names its batch. */
function readingsOf(seq: number, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    sensor: 'bme280',
    ts: T0 + seq * 1_000 + i,
    metrics: { temperature: 20 + i / 100, humidity: 40 },
  }));
}

async function provisioned(info: LocalCoreInfo, thingName: string): Promise<ProvisionedThing> {
  const iot = iotClient(info);
  try {
    return await provisionThing(iot, thingName, {
      name: RECOMMENDED_POLICY_NAME,
      document: recommendedDevicePolicy(info.region, info.accountId),
      create: true,
    });
  } finally {
    iot.destroy();
  }
}

async function connected(info: LocalCoreInfo, thing: ProvisionedThing): Promise<mqtt.MqttClientConnection> {
  const connection = deviceConnection({
    port: info.mqtt.port,
    caCertPem: readFileSync(info.caFile, 'utf8'),
    cert: thing,
    clientId: thing.thingName,
  });
  connections.push(connection);
  await within(connection.connect(), 10_000, 'device connect');
  return connection;
}

const publishBatch = (connection: mqtt.MqttClientConnection, thingName: string, seq: number, readings: number) =>
  connection.publish(
    appTopics.telemetry(thingName),
    JSON.stringify(batchOf(thingName, seq, readingsOf(seq, readings))),
    mqtt.QoS.AtLeastOnce,
  );

/** The seqs of every batch of `thingName` in the store (readings are one per ms from T0 + seq s). */
async function storedSeqs(store: TelemetryStore, thingName: string): Promise<Set<number>> {
  const seqs = new Set<number>();
  let nextToken: string | undefined;
  do {
    const page = await store.query({
      thingName,
      from: T0,
      to: T0 + 10_000_000,
      limit: 1000,
      ...(nextToken ? { nextToken } : {}),
    });
    for (const item of page.items) seqs.add(item.seq);
    nextToken = page.nextToken;
  } while (nextToken);
  return seqs;
}

describe('a PUBACK means the telemetry is stored', () => {
  it('kill -9 of the core right after a burst of PUBACKs loses none of the acknowledged batches', async () => {
    const dir = tempDir('durable-kill');
    dirs.push(dir);
    const core = await launchCore(dir);
    const thing = await provisioned(core.info, 'pi-burst');
    const connection = await connected(core.info, thing);

    // One second's burst: IoT Core takes 100 PUBLISH/s on a connection (the core enforces it), and
    // over MQTT 3.1.1 a throttled publish gets no PUBACK at all, so more would only time out.
    const batches = 100;
    const perBatch = 50;
    await within(
      Promise.all(Array.from({ length: batches }, (_, i) => publishBatch(connection, 'pi-burst', i + 1, perBatch))),
      30_000,
      'every PUBACK',
    );
    core.child.kill('SIGKILL');
    expect((await core.exited).signal).toBe('SIGKILL');
    await closeQuietly(connection);

    const after = await startCore(dir);
    try {
      expect(await after.core.services.telemetry.countReadings('pi-burst')).toBe(batches * perBatch);
    } finally {
      await after.stop();
    }
  });

  it('a graceful stop while a device publishes: every acknowledged batch is stored', async () => {
    const dir = tempDir('durable-stop');
    dirs.push(dir);
    const core = await startCore(dir);
    const thing = await provisioned(core.info, 'pi-steady');
    const connection = await connected(core.info, thing);

    const acked = new Set<number>();
    let stopped = false;
    let seq = 1;
    let reachedHundred!: () => void;
    const hundred = new Promise<void>((resolve) => {
      reachedHundred = resolve;
    });
    // Eight publishers in a loop, like an agent's in-flight window, until the core is gone.
    const publisher = async () => {
      while (!stopped) {
        const mine = seq++;
        try {
          await publishBatch(connection, 'pi-steady', mine, 5);
          acked.add(mine);
          if (acked.size >= 100) reachedHundred();
        } catch {
          return; // the connection went away with the core
        }
      }
    };
    const publishers = Array.from({ length: 8 }, publisher);
    await within(hundred, 20_000, '100 acknowledged batches');
    await core.stop();
    stopped = true;
    await closeQuietly(connection);
    await Promise.all(publishers);

    const after = await startCore(dir);
    try {
      const stored = await storedSeqs(after.core.services.telemetry, 'pi-steady');
      const missing = [...acked].filter((s) => !stored.has(s));
      expect(acked.size).toBeGreaterThanOrEqual(100);
      expect(missing).toEqual([]);
    } finally {
      await after.stop();
    }
  });
});
