/**
 * The broker's MQTT 5 behaviour, as AWS IoT Core documents it ("MQTT 5 supported features", "MQTT
 * reason codes", "AWS IoT differences from MQTT specifications"), against the real clients: aws-crt's
 * `Mqtt5Client` (the agent's), mqtt.js 5, and aws-crt's MQTT 3.1.1 connection on the same listener.
 * Raw TLS sockets only where both clients refuse to send what the test needs (a topic alias above
 * the advertised maximum).
 */
import tls from 'node:tls';
import { LIMITS, MQTT5_REASON, presenceTopics } from '@pifleet/protocol';
import { mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';
import { connect, type IConnackPacket, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/index.js';
import type { AttachedPolicy, CertificateStatus } from '../../src/index.js';
import {
  allowAll,
  arn,
  busJson,
  type Crt5Client,
  closeQuietly,
  connectCrt5,
  connectMqttjs,
  type DeviceEndpoint,
  deviceConnection,
  Inbox,
  IOT_CORE_CONNACK,
  type IssuedCertificate,
  type MemoryIdentities,
  mqttjsOptions,
  policy,
  remainingLength,
  startTlsBroker,
  type TestPki,
  within,
} from './fixtures.js';

/** Connect as anyone; publish, subscribe and receive only under `open/`. */
const openOnly = policy(
  'open-only',
  { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
  { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: arn('topic', 'open/*') },
  { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', 'open/*') },
);
const noConnect = policy('no-connect', { Effect: 'Allow', Action: 'iot:Publish', Resource: '*' });

/** The reason code of the DISCONNECT the broker sends an mqtt.js client. */
function serverDisconnect(client: MqttClient): Promise<number | undefined> {
  return within(
    new Promise<number | undefined>((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode))),
    5_000,
    'DISCONNECT',
  );
}

/** MQTT 5 CONNECT (clean start, keep-alive 60 s, no properties), byte by byte. */
function connect5Packet(clientId: string): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04, ...Buffer.from('MQTT'), 0x05, 0x02, 0x00, 0x3c, 0x00]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, ...remainingLength(body.length)]), body]);
}

/** MQTT 5 PUBLISH at QoS 0 with a Topic Alias property. */
function publishWithAlias(topic: string, alias: number, payload: string): Buffer {
  const name = Buffer.from(topic, 'utf8');
  const body = Buffer.concat([
    Buffer.from([name.length >> 8, name.length & 0xff]),
    name,
    Buffer.from([0x03, 0x23, alias >> 8, alias & 0xff]),
    Buffer.from(payload),
  ]);
  return Buffer.concat([Buffer.from([0x30, ...remainingLength(body.length)]), body]);
}

describe('MQTT 5 on the local IoT Core', () => {
  let pki: TestPki;
  let identities: MemoryIdentities;
  let broker: Broker;
  let port: number;
  const inbox = new Inbox();
  const beforeAck: string[] = [];
  const crt: Crt5Client[] = [];
  const js: MqttClient[] = [];
  const crt311: mqtt.MqttClientConnection[] = [];
  let n = 0;

  beforeAll(async () => {
    ({ pki, identities, broker, port } = await startTlsBroker());
    await broker.bus.subscribe('#', inbox.push);
    await broker.bus.subscribe('$aws/events/presence/+/+', inbox.push);
    // Stands in for the rules engine, which takes clients' QoS 1 messages before they are acknowledged.
    broker.bus.acceptBeforeAck((m) => {
      beforeAck.push(m.topic);
      // A store that cannot take the message: it must not be acknowledged.
      return m.topic.startsWith('unstorable/') ? Promise.reject(new Error('disk full')) : undefined;
    });
  });

  afterEach(async () => {
    await Promise.all([
      ...crt.splice(0).map((c) => c.stop()),
      ...js.splice(0).map((c) => c.endAsync(true).catch(() => undefined)),
      ...crt311.splice(0).map((c) => closeQuietly(c)),
    ]);
  });

  afterAll(async () => {
    await broker?.stop();
  });

  async function device(
    options: { policies?: AttachedPolicy[]; status?: CertificateStatus; register?: boolean } = {},
  ): Promise<DeviceEndpoint & { cert: IssuedCertificate }> {
    const thing = `m5-${++n}-${Date.now().toString(36)}`;
    const cert = await pki.issue(thing);
    if (options.register !== false) {
      identities.put(cert.certificateId, {
        status: options.status ?? 'ACTIVE',
        thingNames: [thing],
        policies: options.policies ?? [allowAll],
      });
    }
    return { port, caCertPem: pki.caCertPem, cert, clientId: thing };
  }

  async function crt5(endpoint: DeviceEndpoint, options: Parameters<typeof connectCrt5>[1] = {}) {
    const c = await connectCrt5(endpoint, options);
    crt.push(c);
    return c;
  }

  async function mqttjs(endpoint: DeviceEndpoint, options: Parameters<typeof connectMqttjs>[1] = {}) {
    const c = await connectMqttjs(endpoint, options);
    js.push(c);
    return c;
  }

  const presence = (clientId: string, eventType: 'connected' | 'disconnected') =>
    inbox.next((m) => m.topic === presenceTopics[eventType](clientId));

  it('serves MQTT 3.1.1 and 5 on one mutual-TLS listener, messages crossing between them', async () => {
    const [a, b, c] = await Promise.all([device(), device(), device()]);
    const v5 = await crt5(a);
    const conn311 = deviceConnection({ port, caCertPem: pki.caCertPem, cert: b.cert, clientId: b.clientId });
    crt311.push(conn311);
    await within(conn311.connect(), 5_000, 'connect 3.1.1');
    const js5 = await mqttjs(c);

    const at311: string[] = [];
    let got311: () => void = () => undefined;
    const arrived311 = new Promise<void>((resolve) => (got311 = resolve));
    await conn311.subscribe(`x/${b.clientId}`, mqtt.QoS.AtLeastOnce, (_t, payload) => {
      at311.push(Buffer.from(payload).toString());
      got311();
    });
    await v5.client.subscribe({ subscriptions: [{ topicFilter: `x/${a.clientId}`, qos: mqtt5.QoS.AtLeastOnce }] });

    await js5.publishAsync(`x/${b.clientId}`, 'to 3.1.1', { qos: 1 });
    await conn311.publish(`x/${a.clientId}`, 'to 5', mqtt.QoS.AtLeastOnce);
    await within(arrived311, 5_000, '3.1.1 delivery');
    const at5 = await v5.message((m) => m.topicName === `x/${a.clientId}`);
    expect(at311).toEqual(['to 3.1.1']);
    expect(Buffer.from(at5.payload as ArrayBuffer).toString()).toBe('to 5');
    expect(broker.bus.sessions().size).toBeGreaterThanOrEqual(3);
  });

  it('knows the protocol of each session: 5 for aws-crt Mqtt5Client and mqtt.js v5, 3.1.1 for the others', async () => {
    const [a, b, c, d] = await Promise.all([device(), device(), device(), device()]);
    const seen = new Map<string, string>();
    const stop = broker.bus.onClientConnected((session) => seen.set(session.clientId, session.protocol));
    try {
      await crt5(a);
      await mqttjs(b);
      await mqttjs(c, { protocolVersion: 4 });
      const conn311 = deviceConnection({ port, caCertPem: pki.caCertPem, cert: d.cert, clientId: d.clientId });
      crt311.push(conn311);
      await within(conn311.connect(), 5_000, 'connect 3.1.1');
    } finally {
      stop();
    }
    const sessions = broker.bus.sessions();
    const protocols = [a, b, c, d].map((x) => sessions.get(x.clientId)?.protocol);
    expect(protocols).toEqual(['5', '5', '3.1.1', '3.1.1']);
    expect([a, b, c, d].map((x) => seen.get(x.clientId))).toEqual(protocols);
  });

  it('advertises IoT Core’s MQTT 5 capabilities in the CONNACK (aws-crt)', async () => {
    const v5 = await crt5(await device());
    expect(v5.connack).toMatchObject(IOT_CORE_CONNACK);
    expect(v5.connack.serverKeepAlive).toBeUndefined();
    expect(v5.settings).toMatchObject({ maximumQos: mqtt5.QoS.AtLeastOnce, receiveMaximumFromServer: 100 });
  });

  it.each<[string, number, number | undefined]>([
    ['below 30 s', 10, 30],
    ['0 (none)', 0, 1_200],
    ['above 1200 s', 1_500, 1_200],
    ['within the range', 60, undefined],
  ])('answers a keep-alive %s (%d s) with Server Keep Alive %s (mqtt.js)', async (_name, keepalive, expected) => {
    const client = connect(mqttjsOptions(await device(), { keepalive }));
    js.push(client);
    const [connack] = await within(
      new Promise<[IConnackPacket]>((resolve) => client.once('connect', (packet) => resolve([packet]))),
      5_000,
      'CONNACK',
    );
    expect(connack.properties?.serverKeepAlive).toBe(expected);
    expect(connack.properties).toMatchObject({ maximumQoS: 1, subscriptionIdentifiersAvailable: false });
  });

  it('still lets an MQTT 3.1.1 client connect with keep-alive 0 (no Server Keep Alive in 3.1.1)', async () => {
    const client = await mqttjs(await device(), { protocolVersion: 4, keepalive: 0 });
    expect(client.connected).toBe(true);
  });

  it.each<[string, { policies?: AttachedPolicy[]; status?: CertificateStatus; register?: boolean }]>([
    ['a certificate unknown to the registry', { register: false }],
    ['an INACTIVE certificate', { status: 'INACTIVE' }],
    ['a REVOKED certificate', { status: 'REVOKED' }],
    ['a policy without iot:Connect', { policies: [noConnect] }],
  ])('refuses CONNECT with %s: CONNACK 0x87 over MQTT 5, return code 5 over 3.1.1', async (_name, options) => {
    const endpoint = await device(options);
    const refused = await connectCrt5(endpoint).then(
      async (c) => {
        await c.stop();
        return undefined;
      },
      (err: { reasonCode?: number }) => err.reasonCode,
    );
    expect(refused).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    const code311 = await connectMqttjs(endpoint, { protocolVersion: 4 }).then(
      async (c) => {
        await c.endAsync(true);
        return 0;
      },
      (err: { code?: number }) => err.code,
    );
    expect(code311).toBe(5);
    expect(broker.bus.sessions().has(endpoint.clientId)).toBe(false);
  });

  it('answers a SUBSCRIBE with 0x87 for the filter the policy denies and grants the other', async () => {
    const endpoint = await device({ policies: [openOnly] });
    const client = await mqttjs(endpoint);
    // mqtt.js rejects a SUBSCRIBE with any failure code, and hands over the SUBACK.
    const refused = await client.subscribeAsync({ 'open/a': { qos: 1 }, 'closed/a': { qos: 1 } }).then(
      () => undefined,
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
    );
    expect(refused).toEqual([1, MQTT5_REASON.NOT_AUTHORIZED]);
    expect(client.connected).toBe(true);
    // And the aws-crt client reads the same SUBACK.
    const v5 = await crt5(await device({ policies: [openOnly] }));
    const suback = await v5.client.subscribe({
      subscriptions: [
        { topicFilter: 'closed/#', qos: mqtt5.QoS.AtLeastOnce },
        { topicFilter: 'open/#', qos: mqtt5.QoS.AtLeastOnce },
      ],
    });
    expect(suback.reasonCodes).toEqual([MQTT5_REASON.NOT_AUTHORIZED, mqtt5.SubackReasonCode.GrantedQoS1]);
  });

  it('grants a QoS 2 SUBSCRIBE at QoS 1, the Maximum QoS', async () => {
    const client = await mqttjs(await device());
    const [granted] = await client.subscribeAsync('any/q2', { qos: 2 });
    expect(granted?.qos).toBe(1);
  });

  it('answers a policy-denied QoS 1 PUBLISH with PUBACK 0x87, keeps the connection, and the message goes nowhere', async () => {
    const endpoint = await device({ policies: [openOnly] });
    const v5 = await crt5(endpoint);
    const denied = await v5.client.publish({
      topicName: `closed/${endpoint.clientId}`,
      payload: 'no',
      qos: mqtt5.QoS.AtLeastOnce,
    });
    expect((denied as mqtt5.PubackPacket).reasonCode).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    // QoS 0 has no answer: dropped, connection kept.
    await v5.client.publish({ topicName: `closed/${endpoint.clientId}/0`, payload: 'no', qos: mqtt5.QoS.AtMostOnce });
    const allowed = await v5.client.publish({
      topicName: `open/${endpoint.clientId}`,
      payload: 'yes',
      qos: mqtt5.QoS.AtLeastOnce,
    });
    expect((allowed as mqtt5.PubackPacket).reasonCode).toBe(0);
    await inbox.next((m) => m.topic === `open/${endpoint.clientId}`);
    expect(inbox.messages.filter((m) => m.topic.startsWith(`closed/${endpoint.clientId}`))).toEqual([]);
    expect(beforeAck).toContain(`open/${endpoint.clientId}`);
    expect(beforeAck.filter((t) => t.startsWith('closed/'))).toEqual([]);
    expect(broker.bus.sessions().has(endpoint.clientId)).toBe(true);
  });

  it('disconnects (0x80) without PUBACK when a QoS 1 message cannot be made durable, so the device keeps it', async () => {
    const endpoint = await device();
    const client = await mqttjs(endpoint);
    const disconnect = serverDisconnect(client);
    // A PUBACK would complete the publish: without error for 0x00, with its code (e.g. 0x87) otherwise.
    let pubackCode: number | undefined;
    client.publish(`unstorable/${endpoint.clientId}`, 'x', { qos: 1 }, (err) => {
      pubackCode = err ? (err as { code?: number }).code : 0;
    });
    expect(await disconnect).toBe(MQTT5_REASON.UNSPECIFIED_ERROR);
    expect(pubackCode).toBeUndefined();
    expect(busJson(await presence(endpoint.clientId, 'disconnected')).disconnectReason).toBe('SERVER_ERROR');
    expect(inbox.messages.some((m) => m.topic === `unstorable/${endpoint.clientId}`)).toBe(false);
  });

  it('still closes an MQTT 3.1.1 connection on a policy-denied PUBLISH', async () => {
    const endpoint = await device({ policies: [openOnly] });
    const client = await mqttjs(endpoint, { protocolVersion: 4 });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(`closed/${endpoint.clientId}`, 'no', { qos: 1 });
    await within(closed, 5_000, 'connection closed');
    const event = await presence(endpoint.clientId, 'disconnected');
    expect(busJson(event).disconnectReason).toBe('AUTH_ERROR');
  });

  it.each<[string, (id: string) => string]>([
    ['more than 8 levels', (id) => `a/b/c/d/e/f/g/h/i/${id}`],
    ['a reserved $aws topic', (id) => `$aws/things/${id}/shadow/update/accepted`],
    ['a topic over 256 bytes', (id) => `t/${id}/${'x'.repeat(260)}`],
  ])('answers a QoS 1 PUBLISH to %s with PUBACK 0x90 and keeps the connection', async (_name, topicOf) => {
    const endpoint = await device();
    const v5 = await crt5(endpoint);
    const topic = topicOf(endpoint.clientId);
    const answer = await v5.client.publish({ topicName: topic, payload: 'x', qos: mqtt5.QoS.AtLeastOnce });
    expect((answer as mqtt5.PubackPacket).reasonCode).toBe(MQTT5_REASON.TOPIC_NAME_INVALID);
    const ok = await v5.client.publish({
      topicName: `ok/${endpoint.clientId}`,
      payload: 'x',
      qos: mqtt5.QoS.AtLeastOnce,
    });
    expect((ok as mqtt5.PubackPacket).reasonCode).toBe(0);
    expect(inbox.messages.some((m) => m.topic === topic)).toBe(false);
  });

  it.each<[string, number]>([
    ['just over 128 KB (refused by the publish authorization)', LIMITS.maxMessageBytes + 1],
    ['far over it (refused from its fixed header)', 200 * 1024],
  ])('disconnects with 0x95 on a payload %s', async (_name, size) => {
    const endpoint = await device();
    // mqtt.js, since aws-crt does not send a packet over the CONNACK's Maximum Packet Size at all.
    const client = await mqttjs(endpoint);
    const disconnect = serverDisconnect(client);
    client.publish(`big/${endpoint.clientId}`, Buffer.alloc(size, 0x41), { qos: 1 }, () => undefined);
    expect(await disconnect).toBe(MQTT5_REASON.PACKET_TOO_LARGE);
    expect(busJson(await presence(endpoint.clientId, 'disconnected')).disconnectReason).toBe('CLIENT_ERROR');
    expect(inbox.messages.some((m) => m.topic === `big/${endpoint.clientId}`)).toBe(false);
  });

  it('disconnects with 0x9B on a QoS 2 PUBLISH (Maximum QoS is 1)', async () => {
    const endpoint = await device();
    // mqtt.js, since aws-crt does not send a QoS above the CONNACK's Maximum QoS at all.
    const client = await mqttjs(endpoint);
    const disconnect = serverDisconnect(client);
    client.publish(`q2/${endpoint.clientId}`, 'x', { qos: 2 }, () => undefined);
    expect(await disconnect).toBe(MQTT5_REASON.QOS_NOT_SUPPORTED);
    expect(inbox.messages.some((m) => m.topic === `q2/${endpoint.clientId}`)).toBe(false);
  });

  it('disconnects with 0xA1 on a SUBSCRIBE carrying a subscription identifier', async () => {
    const endpoint = await device();
    const v5 = await crt5(endpoint);
    v5.client
      .subscribe({
        subscriptions: [{ topicFilter: `s/${endpoint.clientId}`, qos: mqtt5.QoS.AtLeastOnce }],
        subscriptionIdentifier: 7,
      })
      .catch(() => undefined);
    expect(await within(v5.disconnected, 5_000, 'DISCONNECT')).toBe(
      MQTT5_REASON.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
    );
  });

  it('resolves topic aliases up to 8 and disconnects with 0x94 on alias 9', async () => {
    const endpoint = await device();
    const client = await mqttjs(endpoint);
    await client.publishAsync(`alias/${endpoint.clientId}`, 'registered', { qos: 1, properties: { topicAlias: 8 } });
    await client.publishAsync('', 'by alias', { qos: 1, properties: { topicAlias: 8 } });
    const byAlias = await inbox.next((m) => m.payload.toString() === 'by alias');
    expect(byAlias.topic).toBe(`alias/${endpoint.clientId}`);

    // mqtt.js and aws-crt refuse to send an alias above the CONNACK's maximum: raw bytes.
    const raw = await device();
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: pki.caCertPem,
      cert: raw.cert.certPem,
      key: raw.cert.keyPem,
    });
    socket.on('error', () => undefined);
    const bytes: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => bytes.push(chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    const connacked = new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.write(connect5Packet(raw.clientId));
    await within(connacked, 5_000, 'CONNACK');
    socket.write(publishWithAlias(`alias/${raw.clientId}`, 9, 'x'));
    await within(closed, 5_000, 'connection closed');
    const all = Buffer.concat(bytes);
    // CONNACK first, then DISCONNECT (0xE0) with its reason code.
    const at = all.indexOf(0xe0, 2 + (all[1] ?? 0));
    expect(at).toBeGreaterThan(0);
    expect(all[at + 2]).toBe(MQTT5_REASON.TOPIC_ALIAS_INVALID);
    expect(busJson(await presence(raw.clientId, 'disconnected')).disconnectReason).toBe('CLIENT_ERROR');
  });

  it('sends the older connection DISCONNECT 0x8E when its client id connects again', async () => {
    const endpoint = await device();
    const first = await crt5(endpoint);
    const second = await crt5(endpoint);
    expect(await within(first.disconnected, 5_000, 'DISCONNECT')).toBe(MQTT5_REASON.SESSION_TAKEN_OVER);
    expect(busJson(await presence(endpoint.clientId, 'disconnected')).disconnectReason).toBe('DUPLICATE_CLIENTID');
    expect(second.client).toBeDefined();
    // The new connection is registered once the old one is closed (aedes takes the session over).
    await inbox.next((m) => m.topic === presenceTopics.connected(endpoint.clientId) && busJson(m).versionNumber === 1);
    expect(broker.bus.sessions().has(endpoint.clientId)).toBe(true);
  });

  it('sends DISCONNECT 0x87 when the certificate of an open connection is deactivated', async () => {
    const endpoint = await device();
    const v5 = await crt5(endpoint);
    identities.update(endpoint.cert.certificateId, { status: 'INACTIVE' });
    expect(await within(v5.disconnected, 5_000, 'DISCONNECT')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(busJson(await presence(endpoint.clientId, 'disconnected')).disconnectReason).toBe('AUTH_ERROR');
  });

  it.each<[string, number, boolean]>([
    ['normal disconnection (0x00)', 0x00, false],
    ['disconnect with will message (0x04)', 0x04, true],
  ])(
    'reports a client DISCONNECT with %s (%d) as CLIENT_INITIATED_DISCONNECT; will published: %s',
    async (_n, code, will) => {
      const endpoint = await device();
      const willTopic = `will/${endpoint.clientId}`;
      const v5 = await crt5(endpoint, { will: { topic: willTopic, payload: 'gone' } });
      await v5.stop(code);
      const event = busJson(await presence(endpoint.clientId, 'disconnected'));
      expect(event).toMatchObject({ disconnectReason: 'CLIENT_INITIATED_DISCONNECT', clientInitiatedDisconnect: true });
      // The will, when there is one, is published before the disconnected event is (both from close).
      if (will) {
        const published = await inbox.next((m) => m.topic === willTopic);
        expect(published).toMatchObject({ lastWill: true, clientId: endpoint.clientId });
      } else {
        expect(inbox.messages.some((m) => m.topic === willTopic)).toBe(false);
      }
    },
  );

  it('carries MQTT 5 message properties v5 → v5, leaves them off for 3.1.1, and fills BusMessage.properties', async () => {
    const [pub, sub5, sub311] = await Promise.all([device(), device(), device()]);
    const publisher = await mqttjs(pub);
    const v5 = await crt5(sub5);
    const old = await mqttjs(sub311, { protocolVersion: 4 });
    const topic = `props/${pub.clientId}`;
    await v5.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
    await old.subscribeAsync(topic, { qos: 1 });
    const at311 = new Promise<{ properties?: unknown }>((resolve) =>
      old.once('message', (_t, _p, packet) => resolve(packet as { properties?: unknown })),
    );
    await publisher.publishAsync(topic, '{"v":1}', {
      qos: 1,
      properties: {
        userProperties: { site: 'lab', tag: ['a', 'b'] },
        contentType: 'application/json',
        payloadFormatIndicator: true,
        responseTopic: `reply/${pub.clientId}`,
        correlationData: Buffer.from('c-1'),
        messageExpiryInterval: 60,
      },
    });
    const got = await v5.message((m) => m.topicName === topic);
    expect(got).toMatchObject({
      contentType: 'application/json',
      payloadFormat: mqtt5.PayloadFormatIndicator.Utf8,
      responseTopic: `reply/${pub.clientId}`,
    });
    expect(Buffer.from(got.correlationData as ArrayBuffer).toString()).toBe('c-1');
    expect(got.messageExpiryIntervalSeconds).toBeGreaterThan(55);
    expect(got.messageExpiryIntervalSeconds).toBeLessThanOrEqual(60);
    expect(got.userProperties).toEqual([
      { name: 'site', value: 'lab' },
      { name: 'tag', value: 'a' },
      { name: 'tag', value: 'b' },
    ]);
    expect((await within(at311, 5_000, '3.1.1 delivery')).properties).toBeUndefined();
    const onBus = await inbox.next((m) => m.topic === topic);
    expect(onBus.properties).toMatchObject({
      contentType: 'application/json',
      payloadFormatIndicator: true,
      responseTopic: `reply/${pub.clientId}`,
      userProperties: { site: 'lab', tag: ['a', 'b'] },
      messageExpiryInterval: 60,
    });
    expect(onBus.properties.correlationData?.toString()).toBe('c-1');
  });

  it('forgets a retained message once its message expiry passes, and gives a later subscriber the time left', async () => {
    const endpoint = await device();
    const publisher = await mqttjs(endpoint);
    const short = `retained/${endpoint.clientId}/short`;
    const long = `retained/${endpoint.clientId}/long`;
    await publisher.publishAsync(short, 'brief', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    await publisher.publishAsync(long, 'lasting', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } });
    expect(broker.retained(short)?.payload.toString()).toBe('brief');
    // The expiry is a timer: wait past it.
    await new Promise<void>((resolve) => setTimeout(resolve, 1_300));
    expect(broker.retained(short)).toBeUndefined();
    expect(broker.retained(long)?.payload.toString()).toBe('lasting');

    const v5 = await crt5(await device());
    await v5.client.subscribe({
      subscriptions: [
        { topicFilter: short, qos: mqtt5.QoS.AtLeastOnce },
        { topicFilter: long, qos: mqtt5.QoS.AtLeastOnce },
      ],
    });
    const got = await v5.message((m) => m.topicName === long);
    expect(got.retain).toBe(true);
    expect(got.messageExpiryIntervalSeconds).toBeLessThanOrEqual(59);
    expect(got.messageExpiryIntervalSeconds).toBeGreaterThan(50);
    // Retained messages come in the order of the SUBSCRIBE's filters: the expired one would be first.
    expect(v5.received.map((m) => m.topicName)).toEqual([long]);
  });

  it('delivers a 3.1.1 publisher’s message to an MQTT 5 subscriber without properties', async () => {
    const [pub, sub] = await Promise.all([device(), device()]);
    const old = await mqttjs(pub, { protocolVersion: 4 });
    const v5 = await crt5(sub);
    const topic = `plain/${pub.clientId}`;
    await v5.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
    await old.publishAsync(topic, 'plain', { qos: 1 });
    const got = await v5.message((m) => m.topicName === topic);
    expect(got.userProperties ?? []).toEqual([]);
    expect(got.contentType).toBeUndefined();
    expect(got.responseTopic).toBeUndefined();
    expect(got.messageExpiryIntervalSeconds).toBeUndefined();
    expect((await inbox.next((m) => m.topic === topic)).properties).toEqual({});
  });

  it('sends an in-process publish’s properties to MQTT 5 subscribers', async () => {
    const v5 = await crt5(await device());
    const topic = `inproc/${v5.settings.clientId}`;
    await v5.client.subscribe({ subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }] });
    await broker.bus.publish(topic, 'x', { qos: 1, properties: { userProperties: { from: 'core' } } });
    const got = await v5.message((m) => m.topicName === topic);
    expect(got.userProperties).toEqual([{ name: 'from', value: 'core' }]);
  });
});
