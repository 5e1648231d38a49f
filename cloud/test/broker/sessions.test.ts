/**
 * Persistent sessions as IoT Core keeps them ("MQTT persistent sessions"): MQTT 3.1.1 clean session
 * 0 and MQTT 5 clean start 0 with a session expiry interval keep their subscriptions and the QoS 1
 * messages published while the client is offline, for the persistent session expiry period (an
 * MQTT 5 client's own interval is clamped to it); a session that expires loses its queue; a queued
 * message whose MQTT 5 message expiry passes is not delivered, and one that is arrives with the
 * time it has left. The period is shortened to a few seconds here, so the expiry tests wait for it.
 */
import { MQTT5_REASON } from '@pifleet/protocol';
import { mqtt5 } from 'aws-iot-device-sdk-v2';
import { connect, type IConnackPacket, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PERSISTENT_SESSION_EXPIRY } from '../../src/broker/broker.js';
import { type Broker, createBroker } from '../../src/broker/index.js';
import {
  ACCOUNT,
  allowAll,
  type Crt5Client,
  connectCrt5,
  connectMqttjs,
  type DeviceEndpoint,
  type MemoryIdentities,
  mqttjsOptions,
  startTlsBroker,
  type TestPki,
  within,
} from './fixtures.js';

const EXPIRY_SECONDS = 3;

/** Resolves after `ms`: only where the behaviour under test is a timer (an expiry), not an event. */
const elapse = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Messages an mqtt.js client receives, by payload. */
function collect(client: MqttClient): { readonly payloads: string[]; next(payload: string): Promise<void> } {
  const payloads: string[] = [];
  const waiters = new Map<string, () => void>();
  client.on('message', (_topic, payload) => {
    const text = payload.toString();
    payloads.push(text);
    waiters.get(text)?.();
  });
  return {
    payloads,
    next: (payload) =>
      payloads.includes(payload)
        ? Promise.resolve()
        : within(new Promise<void>((resolve) => waiters.set(payload, resolve)), 5_000, `message ${payload}`),
  };
}

describe('persistent sessions', () => {
  let pki: TestPki;
  let identities: MemoryIdentities;
  let broker: Broker;
  let port: number;
  const crt: Crt5Client[] = [];
  const js: MqttClient[] = [];
  let n = 0;

  beforeAll(async () => {
    ({ pki, identities, broker, port } = await startTlsBroker({ persistentSessionExpirySeconds: EXPIRY_SECONDS }));
  });

  afterEach(async () => {
    await Promise.all([
      ...crt.splice(0).map((c) => c.stop()),
      ...js.splice(0).map((c) => c.endAsync(true).catch(() => undefined)),
    ]);
  });

  afterAll(async () => {
    await broker?.stop();
  });

  async function device(): Promise<DeviceEndpoint> {
    const thing = `ps-${++n}-${Date.now().toString(36)}`;
    const cert = await pki.issue(thing);
    identities.put(cert.certificateId, { thingNames: [thing], policies: [allowAll] });
    return { port, caCertPem: pki.caCertPem, cert, clientId: thing };
  }

  async function crt5(endpoint: DeviceEndpoint, sessionExpirySeconds: number) {
    const c = await connectCrt5(endpoint, { sessionExpirySeconds });
    crt.push(c);
    return c;
  }

  /** An MQTT 3.1.1 (mqtt.js) connection with clean session 0, what it receives, and its CONNACK's session present. */
  async function persistent311(endpoint: DeviceEndpoint) {
    const client = connect(mqttjsOptions(endpoint, { protocolVersion: 4, clean: false }));
    js.push(client);
    // Listening before the CONNACK: queued messages can come in the same read.
    const inbox = collect(client);
    const connack = await within(
      new Promise<IConnackPacket>((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      }),
      5_000,
      `connect ${endpoint.clientId}`,
    );
    return { client, inbox, sessionPresent: connack.sessionPresent };
  }

  /** The connection ends; the session stays (until it expires). */
  async function leave311(client: MqttClient) {
    await client.endAsync();
    js.splice(js.indexOf(client), 1);
  }

  it('refuses a persistent session expiry period outside 1 s – 7 days', () => {
    for (const bad of [0, 1.5, PERSISTENT_SESSION_EXPIRY.maxSeconds + 1]) {
      expect(() =>
        createBroker({
          identities,
          tls: pki.serverTls,
          host: '127.0.0.1',
          port: 0,
          account: ACCOUNT,
          persistentSessionExpirySeconds: bad,
        }),
      ).toThrow(/persistentSessionExpirySeconds/);
    }
    expect(PERSISTENT_SESSION_EXPIRY).toEqual({ defaultSeconds: 3_600, maxSeconds: 604_800 });
  });

  it('MQTT 3.1.1 clean session 0: QoS 1 messages published while offline arrive on reconnect', async () => {
    const endpoint = await device();
    const topic = `q/${endpoint.clientId}`;
    const first = await persistent311(endpoint);
    await first.client.subscribeAsync(topic, { qos: 1 });
    await leave311(first.client);

    await broker.bus.publish(topic, 'one', { qos: 1 });
    await broker.bus.publish(topic, 'two', { qos: 1 });
    await broker.bus.publish(topic, 'qos0', { qos: 0 });

    const again = await persistent311(endpoint);
    expect(again.sessionPresent).toBe(true);
    await again.inbox.next('two');
    await again.inbox.next('one');
    // Not resubscribed: the session kept the subscription, and QoS 0 was not queued.
    await broker.bus.publish(topic, 'live', { qos: 1 });
    await again.inbox.next('live');
    expect(again.inbox.payloads).toEqual(['one', 'two', 'live']);
  });

  it('MQTT 5 clean start 0 (aws-crt): the session expiry is clamped to the period and the queue arrives on reconnect', async () => {
    const endpoint = await device();
    const topic = `q/${endpoint.clientId}`;
    const first = await crt5(endpoint, 3_600);
    // IoT Core's period is the maximum; the CONNACK says what the session really gets.
    expect(first.connack.sessionExpiryInterval).toBe(EXPIRY_SECONDS);
    expect(first.settings.sessionExpiryInterval).toBe(EXPIRY_SECONDS);
    await first.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
    await first.stop();

    await broker.bus.publish(topic, 'one', { qos: 1, properties: { userProperties: { k: 'v' } } });
    await broker.bus.publish(topic, 'two', { qos: 1 });

    const again = await crt5(endpoint, 3_600);
    expect(again.connack.sessionPresent).toBe(true);
    const one = await again.message((m) => Buffer.from(m.payload as ArrayBuffer).toString() === 'one');
    expect(one.userProperties).toEqual([{ name: 'k', value: 'v' }]);
    await again.message((m) => Buffer.from(m.payload as ArrayBuffer).toString() === 'two');
  });

  it('MQTT 5: a queued message whose expiry passed is not delivered; one that has not arrives with the time left', async () => {
    const endpoint = await device();
    const topic = `q/${endpoint.clientId}`;
    const first = await crt5(endpoint, 60);
    await first.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
    await first.stop();

    const publisher = await connectMqttjs(await device());
    js.push(publisher);
    await publisher.publishAsync(topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await publisher.publishAsync(topic, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
    await elapse(1_500);

    const again = await crt5(endpoint, 60);
    expect(again.connack.sessionPresent).toBe(true);
    const long = await again.message((m) => Buffer.from(m.payload as ArrayBuffer).toString() === 'long');
    expect(long.messageExpiryIntervalSeconds).toBeLessThanOrEqual(59);
    expect(long.messageExpiryIntervalSeconds).toBeGreaterThan(50);
    // Delivery follows queue order, so 'short' would have come first.
    expect(again.received.map((m) => Buffer.from(m.payload as ArrayBuffer).toString())).toEqual(['long']);
  });

  it.each<[string]>([['3.1.1'], ['5']])(
    'MQTT %s: a session not resumed within the period expires and loses its queue',
    async (protocol) => {
      const endpoint = await device();
      const topic = `q/${endpoint.clientId}`;
      if (protocol === '5') {
        const first = await crt5(endpoint, 3_600);
        await first.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
        await first.stop();
      } else {
        const first = await persistent311(endpoint);
        await first.client.subscribe(topic, { qos: 1 });
        await leave311(first.client);
      }
      await broker.bus.publish(topic, 'queued', { qos: 1 });
      await elapse(EXPIRY_SECONDS * 1_000 + 700);

      if (protocol === '5') {
        const again = await crt5(endpoint, 3_600);
        expect(again.connack.sessionPresent).toBe(false);
        // Nothing is subscribed any more: subscribe afresh and see only what is published now.
        await again.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
        await broker.bus.publish(topic, 'fresh', { qos: 1 });
        await again.message((m) => Buffer.from(m.payload as ArrayBuffer).toString() === 'fresh');
        expect(again.received.map((m) => Buffer.from(m.payload as ArrayBuffer).toString())).toEqual(['fresh']);
      } else {
        const again = await persistent311(endpoint);
        expect(again.sessionPresent).toBe(false);
        await again.client.subscribeAsync(topic, { qos: 1 });
        await broker.bus.publish(topic, 'fresh', { qos: 1 });
        await again.inbox.next('fresh');
        expect(again.inbox.payloads).toEqual(['fresh']);
      }
    },
  );

  it('MQTT 5: a session resumed within the period keeps it (the expiry restarts at the next disconnect)', async () => {
    const endpoint = await device();
    const topic = `q/${endpoint.clientId}`;
    const first = await crt5(endpoint, 3_600);
    await first.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
    await first.stop();
    await elapse((EXPIRY_SECONDS * 1_000) / 2);
    const second = await crt5(endpoint, 3_600);
    expect(second.connack.sessionPresent).toBe(true);
    await second.stop(MQTT5_REASON.SUCCESS);
    await elapse((EXPIRY_SECONDS * 1_000) / 2 + 300);
    await broker.bus.publish(topic, 'still', { qos: 1 });
    const third = await crt5(endpoint, 3_600);
    expect(third.connack.sessionPresent).toBe(true);
    await third.message((m) => Buffer.from(m.payload as ArrayBuffer).toString() === 'still');
  });
});
