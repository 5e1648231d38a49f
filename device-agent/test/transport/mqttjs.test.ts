import { readFileSync } from 'node:fs';
import { MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';
import type { ConnectPacket } from 'aedes';
import { connect as mqttConnect } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMqttJsTransport } from '../../src/adapters/mqttjs.js';
import type { Transport, TransportEvents } from '../../src/ports/transport.js';
import { contractOptions, describeTransportContract } from './contract.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from './tls-broker.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-test');
});
afterAll(() => pki?.cleanup());

const makeFor =
  (protocol: MqttProtocol) =>
  (port: number, clientId: string, extra: { will?: boolean } = {}, operationTimeoutMs = 30_000) =>
    createMqttJsTransport({ ...contractOptions(pki, port, clientId, extra), operationTimeoutMs, protocol });

describeTransportContract(
  'mqtt.js transport',
  () => pki,
  (port, clientId, extra = {}) => makeFor(extra.protocol ?? '5')(port, clientId, extra),
  MQTT_PROTOCOLS,
);

const nextEvent = <E extends keyof TransportEvents>(t: Transport, e: E) =>
  waitFor<TransportEvents[E]>(`transport ${e}`, (done) => {
    const off = t.on(e, (d) => {
      off();
      done(d);
    });
  });

describe.each(MQTT_PROTOCOLS)('mqtt.js transport, MQTT %s', (protocol) => {
  const make = makeFor(protocol);
  const started = async (t: Transport) => {
    const connected = nextEvent(t, 'connected');
    t.start();
    await connected;
  };

  it('connects with the protocol version asked for, clean, with no session kept after the connection', async () => {
    const connects: ConnectPacket[] = [];
    const broker = await startTlsBroker(pki, 0, {
      preConnect: (_client, packet, cb) => {
        connects.push(packet);
        cb(null, true);
      },
    });
    const t = make(broker.port, 'pi-version');
    expect(t.protocol).toBe(protocol);
    await started(t);
    expect(connects).toHaveLength(1);
    expect(connects[0]?.protocolVersion).toBe(protocol === '5' ? 5 : 4);
    expect(connects[0]?.clean).toBe(true);
    // MQTT 5: no session expiry interval means 0, the session ends with the connection.
    expect(connects[0]?.properties?.sessionExpiryInterval ?? 0).toBe(0);
    await t.stop();
    await broker.close();
  });

  it('rejects a publish the broker never acknowledges after the operation timeout, and one in flight on stop()', async () => {
    const broker = await startTlsBroker(pki, 0, {
      // Never answers: the PUBACK never comes.
      authorizePublish: (_client, packet, cb) => {
        if (!packet.topic.endsWith('/held')) cb(null);
      },
    });
    const t = make(broker.port, 'pi-held', {}, 300);
    await started(t);
    await expect(t.publish('pifleet/pi-held/held', 'x', { qos: 1 })).rejects.toMatchObject({
      code: 'PUBLISH_FAILED',
    });
    const t2 = make(broker.port, 'pi-held-2');
    await started(t2);
    const inFlight = expect(t2.publish('pifleet/pi-held-2/held', 'y', { qos: 1 })).rejects.toMatchObject({
      code: 'STOPPED',
    });
    await t2.stop();
    await inFlight;
    await t.stop();
    await broker.close();
  });

  it('reports a refused CONNECT with the reason code, as a failed connect it keeps retrying', async () => {
    let refuse = true;
    const broker = await startTlsBroker(pki, 0, {
      authenticate: (_client, _user, _pass, cb) => {
        if (!refuse) return cb(null, true);
        cb(Object.assign(new Error('not authorized'), { returnCode: 5 as const }), false);
      },
    });
    const t = make(broker.port, 'pi-refused');
    const failed = nextEvent(t, 'connectFailed');
    t.start();
    const f = await failed;
    expect(f.attempt).toBe(1);
    expect(f.error).toMatchObject({
      code: 'CONNECT_REFUSED',
      data: { reasonCode: 0x87, reason: 'NOT_AUTHORIZED', ...(protocol === '3.1.1' ? { returnCode: 5 } : {}) },
    });
    expect(f.error.message).toContain('NOT_AUTHORIZED');
    refuse = false;
    await nextEvent(t, 'connected');
    await t.stop();
    await broker.close();
  });
});

describe('mqtt.js transport, MQTT 5 only', () => {
  const make = makeFor('5');

  it('names the DISCONNECT reason when another connection takes its client id (0x8e), then reconnects', async () => {
    const broker = await startTlsBroker(pki);
    const t = make(broker.port, 'pi-taken');
    const connected = nextEvent(t, 'connected');
    t.start();
    await connected;
    const interrupted = nextEvent(t, 'interrupted');
    const intruder = mqttConnect({
      protocol: 'mqtts',
      host: 'localhost',
      port: broker.port,
      ca: pki.caPem,
      cert: readFileSync(pki.certFile),
      key: readFileSync(pki.keyFile),
      clientId: 'pi-taken',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const { error } = await interrupted;
    expect(error).toMatchObject({
      code: 'DISCONNECTED_BY_BROKER',
      data: { reasonCode: 0x8e, reason: 'SESSION_TAKEN_OVER' },
    });
    // The transport takes its client id back (the intruder does not reconnect).
    await nextEvent(t, 'connected');
    intruder.end(true);
    await t.stop();
    await broker.close();
  });
});

describe('mqtt.js transport, MQTT 3.1.1 only', () => {
  it('loses the connection over a publish the broker refuses (3.1.1 has no PUBACK code), and never resolves it', async () => {
    const broker = await startTlsBroker(pki, 0, {
      authorizePublish: (_client, packet, cb) =>
        cb(packet.topic.startsWith('forbidden/') ? new Error('denied by policy') : null),
    });
    const t = makeFor('3.1.1')(broker.port, 'pi-pub311', {}, 1_000);
    const connected = nextEvent(t, 'connected');
    t.start();
    await connected;
    const interrupted = nextEvent(t, 'interrupted');
    const pub = t.publish('forbidden/x', 'x', { qos: 1 });
    await interrupted;
    await expect(pub).rejects.toMatchObject({ code: 'PUBLISH_FAILED' });
    await t.stop();
    await broker.close();
  });
});

describe('mqtt.js transport', () => {
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

  it('speaks MQTT 5 unless told otherwise, as the agent config does', () => {
    const t = createMqttJsTransport({ endpoint: 'localhost', port: 1, clientId: 'x', certFile: 'c', keyFile: 'k' });
    expect(t.protocol).toBe('5');
  });
});
