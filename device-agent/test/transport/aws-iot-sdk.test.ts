import { MQTT_PROTOCOLS, MQTT5_REASON, type MqttProtocol } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AwsIotTransport, createAwsIotTransport } from '../../src/adapters/aws-iot-sdk.js';
import { TransportError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import type { TransportEvents } from '../../src/ports/transport.js';
import { contractOptions, describeTransportContract } from './contract.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from './tls-broker.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-test');
});
afterAll(() => pki?.cleanup());

const make = (
  port: number,
  clientId: string,
  extra: { will?: boolean; protocol?: MqttProtocol } = {},
): AwsIotTransport =>
  createAwsIotTransport({ protocol: extra.protocol ?? '5', ...contractOptions(pki, port, clientId, extra) });

describeTransportContract('aws-iot-device-sdk-v2 transport', () => pki, make, MQTT_PROTOCOLS);

describe('aws-iot-device-sdk-v2 transport', () => {
  it('releases its native client on stop()', async () => {
    const broker = await startTlsBroker(pki);
    const t = make(broker.port, 'pi-native');
    const connected = new Promise<void>((resolve) => t.on('connected', () => resolve()));
    t.start();
    await connected;
    expect(t.native()).toBeDefined();
    await t.stop();
    expect(t.native()).toBeUndefined();
    await broker.close();
  });
});

/** A logger whose lines the test can read (parsed JSON). */
function logSink() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { lines, logger };
}

const nextOf = <E extends keyof TransportEvents>(t: AwsIotTransport, e: E) =>
  waitFor<TransportEvents[E]>(`transport ${e}`, (done) => {
    const off = t.on(e, (d) => {
      off();
      done(d);
    });
  });

describe('aws-iot-device-sdk-v2 transport, MQTT 5: the broker says why', () => {
  it('a second connection with the same client id: the first is interrupted with DISCONNECT SESSION_TAKEN_OVER (0x8e), in its error and its log line', async () => {
    const broker = await startTlsBroker(pki);
    const sink = logSink();
    const first = createAwsIotTransport({
      protocol: '5',
      ...contractOptions(pki, broker.port, 'pi-twin'),
      // Long enough that the first does not take the session back while the test looks.
      reconnectMinMs: 30_000,
      reconnectMaxMs: 60_000,
      logger: sink.logger,
    });
    const up = nextOf(first, 'connected');
    first.start();
    await up;
    const interrupted = nextOf(first, 'interrupted');
    const second = make(broker.port, 'pi-twin', { protocol: '5' });
    const secondUp = nextOf(second, 'connected');
    second.start();
    const { error } = await interrupted;
    await secondUp;
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({
      code: 'DISCONNECTED_BY_BROKER',
      message: 'broker closed the connection: DISCONNECT SESSION_TAKEN_OVER (0x8e)',
      data: { reasonCode: MQTT5_REASON.SESSION_TAKEN_OVER, reason: 'SESSION_TAKEN_OVER' },
    });
    expect(sink.lines.find((l) => l.msg === 'connection interrupted')).toMatchObject({
      level: 40,
      reasonCode: 0x8e,
      reason: 'SESSION_TAKEN_OVER',
    });
    await Promise.all([first.stop(), second.stop()]);
    await broker.close();
  });

  it('a broker shutting down: interrupted with DISCONNECT SERVER_SHUTTING_DOWN (0x8b)', async () => {
    const broker = await startTlsBroker(pki);
    const t = make(broker.port, 'pi-shutdown', { protocol: '5' });
    // aedes counts a client as connected (and tells it why it closes it) once its connect is fully
    // processed, a moment after the CONNACK.
    const ready = waitFor<void>('the broker to have the client ready', (done) =>
      broker.aedes.once('clientReady', () => done()),
    );
    const up = nextOf(t, 'connected');
    t.start();
    await Promise.all([up, ready]);
    const interrupted = nextOf(t, 'interrupted');
    // A broker going down tells MQTT 5 clients why before it closes them.
    await new Promise<void>((resolve) => broker.aedes.close(() => resolve()));
    expect((await interrupted).error).toMatchObject({
      code: 'DISCONNECTED_BY_BROKER',
      data: { reasonCode: MQTT5_REASON.SERVER_SHUTTING_DOWN, reason: 'SERVER_SHUTTING_DOWN' },
    });
    await t.stop();
    await broker.close();
  });

  it('a refused CONNACK (0x87 NOT_AUTHORIZED): connectFailed names it, and the warn line says what to check', async () => {
    const broker = await startTlsBroker(pki, 0, {
      // As IoT Core refuses a certificate whose policy does not allow iot:Connect.
      authenticate: (_client, _user, _password, cb) =>
        cb(Object.assign(new Error('not authorized'), { returnCode: 5 }) as Parameters<typeof cb>[0], false),
    });
    const sink = logSink();
    const t = createAwsIotTransport({
      protocol: '5',
      ...contractOptions(pki, broker.port, 'pi-denied'),
      logger: sink.logger,
    });
    const failed = nextOf(t, 'connectFailed');
    t.start();
    const { error, attempt } = await failed;
    expect(attempt).toBe(1);
    expect(error).toMatchObject({
      code: 'CONNECT_REFUSED',
      message: 'broker refused the connection: CONNACK NOT_AUTHORIZED (0x87)',
      data: { reasonCode: 0x87, reason: 'NOT_AUTHORIZED' },
    });
    await waitFor<void>('the cannot-connect warning', (done) => {
      const check = () => (sink.lines.some((l) => l.msg === 'cannot connect') ? done() : setTimeout(check, 20));
      check();
    });
    const warned = sink.lines.find((l) => l.msg === 'cannot connect');
    expect(warned).toMatchObject({ level: 40, reason: 'mqtt-refused', reasonCode: 0x87, mqttReason: 'NOT_AUTHORIZED' });
    expect(warned?.detail).toMatch(/CONNACK NOT_AUTHORIZED \(0x87\).*iot:Connect/);
    await t.stop();
    await broker.close();
  });
});

describe('aws-iot-device-sdk-v2 transport, MQTT 5: the broker advertises a Maximum Packet Size', () => {
  it('a larger PUBLISH is PUBLISH_REFUSED PACKET_TOO_LARGE (0x95) without being sent; the connection stays, smaller ones go', async () => {
    // IoT Core advertises 149504 bytes; 2048 here keeps the payload small.
    const broker = await startTlsBroker(pki, 0, { maximumPacketSize: 2048 });
    const seen: number[] = [];
    broker.aedes.on('publish', (p, client) => {
      if (client) seen.push(p.payload.length);
    });
    const t = make(broker.port, 'pi-big', { protocol: '5' });
    const up = nextOf(t, 'connected');
    t.start();
    await up;
    const refused = await t.publish('pifleet/pi-big/telemetry', 'x'.repeat(4_000), { qos: 1 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toMatchObject({
      code: 'PUBLISH_REFUSED',
      message: 'broker refused the publish: PACKET_TOO_LARGE (0x95)',
      data: {
        topic: 'pifleet/pi-big/telemetry',
        reasonCode: MQTT5_REASON.PACKET_TOO_LARGE,
        reason: 'PACKET_TOO_LARGE',
        reasonString: expect.stringMatching(/exceeds the broker's Maximum Packet Size of 2048 bytes/),
      },
    });
    await t.publish('pifleet/pi-big/telemetry', 'y'.repeat(1_000), { qos: 1 });
    expect(seen).toEqual([1_000]);
    expect(t.isConnected).toBe(true);
    await t.stop();
    await broker.close();
  });
});
