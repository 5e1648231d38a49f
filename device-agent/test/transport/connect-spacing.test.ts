/**
 * IoT Core accepts one CONNECT per second per client id and refuses the next (CONNACK 0x9F): every
 * adapter, on either protocol, keeps its CONNECTs of one client id at least a second apart while
 * the broker refuses them, even with a `reconnectMinMs` far below a second.
 */
import { MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsIotTransport } from '../../src/adapters/aws-iot-sdk.js';
import { createMqttJsTransport } from '../../src/adapters/mqttjs.js';
import { CONNECT_SPACING_MS } from '../../src/adapters/transport-kit.js';
import type { Transport } from '../../src/ports/transport.js';
import { contractOptions } from './contract.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from './tls-broker.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-test');
});
afterAll(() => pki?.cleanup());

const adapters: [string, (port: number, clientId: string, protocol: MqttProtocol) => Transport][] = [
  [
    'mqtt.js',
    (port, clientId, protocol) => createMqttJsTransport({ ...contractOptions(pki, port, clientId), protocol }),
  ],
  [
    'aws-iot-device-sdk-v2',
    (port, clientId, protocol) => createAwsIotTransport({ ...contractOptions(pki, port, clientId), protocol }),
  ],
];

describe.each(adapters)('%s transport', (_name, make) => {
  it.each(MQTT_PROTOCOLS)(
    'MQTT %s: CONNECTs the broker refuses are retried at least a second apart (reconnectMinMs 100)',
    async (protocol) => {
      const connects: number[] = [];
      const broker = await startTlsBroker(pki, 0, {
        authenticate: (_client, _user, _pass, cb) => {
          connects.push(Date.now());
          // The first two are refused; the third is let in.
          if (connects.length <= 2) cb(Object.assign(new Error('refused'), { returnCode: 5 as const }), false);
          else cb(null, true);
        },
      });
      const t = make(broker.port, `pi-spacing-${protocol.replace('.', '')}`, protocol);
      const connected = waitFor<void>(
        'connected',
        (done) => {
          t.on('connected', () => done());
        },
        20_000,
      );
      t.start();
      await connected;
      await t.stop();
      await broker.close();
      expect(connects).toHaveLength(3);
      const gaps = connects.slice(1).map((at, i) => at - (connects[i] ?? 0));
      // Timers may fire a millisecond or two early against Date.now().
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(CONNECT_SPACING_MS - 5);
    },
    30_000,
  );
});
