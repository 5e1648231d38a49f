import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMqttJsTransport } from '../../src/adapters/mqttjs.js';
import { contractOptions, describeTransportContract } from './contract.js';
import { makePki, startTlsBroker, type TestPki } from './tls-broker.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-test');
});
afterAll(() => pki?.cleanup());

const make = (port: number, clientId: string, extra: { will?: boolean } = {}, operationTimeoutMs = 30_000) =>
  createMqttJsTransport({ ...contractOptions(pki, port, clientId, extra), operationTimeoutMs });

describeTransportContract('mqtt.js transport', () => pki, make);

describe('mqtt.js transport', () => {
  const connectedOf = (t: ReturnType<typeof make>) =>
    new Promise<void>((resolve) => {
      const off = t.on('connected', () => {
        off();
        resolve();
      });
    });

  it('rejects a publish the broker never acknowledges after the operation timeout, and one in flight on stop()', async () => {
    const broker = await startTlsBroker(pki, 0, {
      // Never answers: the PUBACK never comes.
      authorizePublish: (_client, packet, cb) => {
        if (!packet.topic.endsWith('/held')) cb(null);
      },
    });
    const t = make(broker.port, 'pi-held', {}, 300);
    const connected = connectedOf(t);
    t.start();
    await connected;
    await expect(t.publish('pifleet/pi-held/held', 'x', { qos: 1 })).rejects.toMatchObject({
      code: 'PUBLISH_FAILED',
    });
    const t2 = make(broker.port, 'pi-held-2');
    const c2 = connectedOf(t2);
    t2.start();
    await c2;
    const inFlight = expect(t2.publish('pifleet/pi-held-2/held', 'y', { qos: 1 })).rejects.toMatchObject({
      code: 'STOPPED',
    });
    await t2.stop();
    await inFlight;
    await t.stop();
    await broker.close();
  });

  it('rejects a subscription the broker refuses', async () => {
    const broker = await startTlsBroker(pki, 0, {
      authorizeSubscribe: (_client, sub, cb) => cb(null, sub.topic.startsWith('forbidden/') ? null : sub),
    });
    const t = make(broker.port, 'pi-sub');
    const connected = connectedOf(t);
    t.start();
    await connected;
    await expect(t.subscribe('forbidden/x', 1, () => undefined)).rejects.toMatchObject({ code: 'SUBSCRIBE_REFUSED' });
    await t.subscribe('allowed/x', 1, () => undefined);
    expect(t.isConnected).toBe(true);
    await t.stop();
    await broker.close();
  });

  it('reports unreadable certificate files as a failed connect instead of throwing', async () => {
    const t = createMqttJsTransport({
      endpoint: 'localhost',
      port: 1,
      clientId: 'pi-nofile',
      certFile: '/nonexistent/cert.pem',
      keyFile: '/nonexistent/key.pem',
      caFile: '/nonexistent/ca.pem',
    });
    const failed = new Promise<{ attempt: number; error: Error }>((resolve) => t.on('connectFailed', resolve));
    t.start();
    const f = await failed;
    expect(f.attempt).toBe(1);
    expect(f.error.message).toMatch(/ENOENT/);
    await t.stop();
  });
});
