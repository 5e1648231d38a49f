import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { IoTClient } from '@aws-sdk/client-iot';
import { appTopics, RECOMMENDED_POLICY_NAME, recommendedDevicePolicy } from '@pifleet/protocol';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalIotCore, localCorePaths } from '../../src/app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { closeQuietly, deviceConnection, within } from '../broker/fixtures.js';
import { iotClient, removeDir, tempDir } from '../http/harness.js';
import { provisionThing } from './harness.js';

/**
 * The local archive buffers what devices send (as Firehose does) and the core's stop writes it:
 * messages a device was told were received, then a clean stop, and every one of them is in the
 * archive, one gzip object per thing, under the layout the AWS stream uses.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

const T0 = 1_700_000_000_000;

/** Every archive object under `dir`'s `raw/`, relative, sorted. */
function archiveObjects(dataDir: string): string[] {
  const raw = join(localCorePaths(dataDir).archiveDir, 'raw');
  if (!existsSync(raw)) return [];
  return readdirSync(raw, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.jsonl.gz'))
    .sort();
}

describe('the archive on a clean stop of the local core', () => {
  it('writes every acknowledged message, one object per thing', async () => {
    const dir = tempDir('archive-stop');
    dirs.push(dir);
    const core = createLocalIotCore({ config: { ...LOCAL_CORE_DEFAULTS, dataDir: dir, mqttPort: 0, httpPort: 0 } });
    const info = await core.start();
    let iot: IoTClient | undefined;
    const connections: mqtt.MqttClientConnection[] = [];
    const sent: { thing: string; seq: number }[] = [];
    try {
      iot = iotClient(info);
      let create = true;
      for (const thingName of ['pi-s1', 'pi-s2']) {
        const thing = await provisionThing(iot, thingName, {
          name: RECOMMENDED_POLICY_NAME,
          document: recommendedDevicePolicy(info.region, info.accountId),
          create,
        });
        create = false;
        const connection = deviceConnection({
          port: info.mqtt.port,
          caCertPem: readFileSync(info.caFile, 'utf8'),
          cert: thing,
          clientId: thingName,
        });
        connections.push(connection);
        await within(connection.connect(), 10_000, 'device connect');
        for (let seq = 1; seq <= 3; seq++) {
          const batch = batchOf(thingName, seq, [{ sensor: 'bme280', ts: T0 + seq, metrics: { temperature: 20 } }]);
          // Resolves on PUBACK: the core has run the rules' actions, the archive holds the record.
          await within(
            connection.publish(appTopics.telemetry(thingName), JSON.stringify(batch), mqtt.QoS.AtLeastOnce),
            5_000,
            'PUBACK',
          );
          sent.push({ thing: thingName, seq });
        }
      }
      // Buffered: nothing written yet (the interval is a minute).
      expect(archiveObjects(dir)).toEqual([]);
    } finally {
      await Promise.all(connections.map((c) => closeQuietly(c)));
      iot?.destroy();
      await core.stop();
    }

    const objects = archiveObjects(dir);
    expect(objects).toHaveLength(2);
    expect(objects.map((o) => o.split('/')[0])).toEqual(['thing=pi-s1', 'thing=pi-s2']);
    const archived = objects.flatMap((o) =>
      gunzipSync(readFileSync(join(localCorePaths(dir).archiveDir, 'raw', o)))
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { topicThing: string; seq: number }),
    );
    expect(archived.map((r) => ({ thing: r.topicThing, seq: r.seq }))).toEqual(sent);
    // No temporary file is left next to the objects.
    const all = readdirSync(join(localCorePaths(dir).archiveDir, 'raw'), { recursive: true, encoding: 'utf8' });
    expect(all.filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 60_000);
});
