import { InvalidRequestException, PublishCommand, type PublishCommandInput } from '@aws-sdk/client-iot-data-plane';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../src/broker/index.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { within } from '../broker/fixtures.js';

/**
 * The IoT data plane's Publish with MQTT 5 properties, through the real
 * `@aws-sdk/client-iot-data-plane` client against the in-process local core: user properties
 * (x-amz-mqtt5-user-properties, base64 JSON), payload format indicator and correlation data
 * (headers), content type, response topic and message expiry (query) reach an mqtt.js MQTT 5
 * subscriber over mutual TLS; an MQTT 3.1.1 subscriber gets the same message without them; a bad
 * value is a 400 InvalidRequestException and nothing is published.
 */

const ALLOW_ALL = {
  Version: '2012-10-17' as const,
  Statement: [{ Effect: 'Allow' as const, Action: 'iot:*', Resource: '*' }],
};

let run: InProcessCore;
let dir: string;
let sub5: MqttClient;
let sub3: MqttClient;
/** Everything published on `dp/#`, as the broker's own bus sees it. */
const seen: BusMessage[] = [];
const enc = new TextEncoder();

async function subscriber(name: string, protocolVersion: 4 | 5): Promise<MqttClient> {
  const thing = await provisionThing(run, name, { policy: ALLOW_ALL, policyName: `all-${name}` });
  const client = await mqtt.connectAsync({ ...thingMqttOptions(run.info, thing), protocolVersion });
  await client.subscribeAsync('dp/#', { qos: 1 });
  return client;
}

beforeAll(async () => {
  dir = tempDir('dp-mqtt5');
  run = await startInProcessCore(dir);
  await run.core.services.broker.bus.subscribe('dp/#', (m) => {
    seen.push(m);
  });
  [sub5, sub3] = await Promise.all([subscriber('dp-sub5', 5), subscriber('dp-sub3', 4)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([sub5, sub3].map((c) => c?.endAsync()));
  await run?.stop();
  removeDir(dir);
});

/** The next message `client` gets on `topic`. */
function nextMessage(client: MqttClient, topic: string): Promise<mqtt.IPublishPacket> {
  return within(
    new Promise((resolve) => {
      const onMessage = (t: string, _payload: Buffer, packet: mqtt.IPublishPacket) => {
        if (t !== topic) return;
        client.off('message', onMessage);
        resolve(packet);
      };
      client.on('message', onMessage);
    }),
    10_000,
    `a message on ${topic}`,
  );
}

/** Sends a Publish and returns what the SDK threw (or undefined). */
async function publishError(command: PublishCommand): Promise<unknown> {
  try {
    await run.data.send(command);
    return undefined;
  } catch (err) {
    return err;
  }
}

/**
 * A Publish whose MQTT 5 header is replaced after the SDK serialized it and before it signs it:
 * the SDK always base64-encodes the user properties, so a raw caller's mistake needs this.
 */
function withRawHeader(input: PublishCommandInput, name: string, value: string): PublishCommand {
  const command = new PublishCommand(input);
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers: Record<string, string> };
      request.headers[name] = value;
      return next(args);
    },
    { step: 'build', name: 'rawMqtt5Header' },
  );
  return command;
}

describe('data-plane Publish with MQTT 5 properties', () => {
  it('delivers every property to an MQTT 5 subscriber and none to a 3.1.1 subscriber', async () => {
    const topic = 'dp/pi-1/commands';
    const at5 = nextMessage(sub5, topic);
    const at3 = nextMessage(sub3, topic);
    await run.data.send(
      new PublishCommand({
        topic,
        qos: 1,
        payload: enc.encode('{"cmd":"reboot"}'),
        userProperties: JSON.stringify([{ deviceName: 'alpha' }, { deviceCnt: '45', site: 'lab' }, { site: 'roof' }]),
        payloadFormatIndicator: 'UTF8_DATA',
        contentType: 'application/json; charset=utf-8',
        responseTopic: 'dp/pi-1/replies',
        correlationData: Buffer.from([0x00, 0xff, 0x10, 0x80]).toString('base64'),
        messageExpiry: 300,
      }),
    );
    const [v5, v3] = await Promise.all([at5, at3]);
    expect(v5.payload.toString()).toBe('{"cmd":"reboot"}');
    expect(v5.qos).toBe(1);
    const { correlationData, messageExpiryInterval, ...rest } = v5.properties ?? {};
    expect({ ...rest, userProperties: { ...rest.userProperties } }).toEqual({
      userProperties: { deviceName: 'alpha', deviceCnt: '45', site: ['lab', 'roof'] },
      payloadFormatIndicator: true,
      contentType: 'application/json; charset=utf-8',
      responseTopic: 'dp/pi-1/replies',
    });
    expect(correlationData).toEqual(Buffer.from([0x00, 0xff, 0x10, 0x80]));
    // The time left when it was delivered: at most what was asked, and not much less.
    expect(messageExpiryInterval).toBeGreaterThanOrEqual(295);
    expect(messageExpiryInterval).toBeLessThanOrEqual(300);
    expect(v3.payload.toString()).toBe('{"cmd":"reboot"}');
    expect(v3.properties).toBeUndefined();
  });

  it('keeps __proto__ and constructor as ordinary user property keys', async () => {
    const topic = 'dp/pi-1/proto';
    const at5 = nextMessage(sub5, topic);
    await run.data.send(
      new PublishCommand({
        topic,
        payload: enc.encode('x'),
        userProperties: '[{"__proto__":"polluted"},{"constructor":"c","toString":"t"}]',
      }),
    );
    const packet = await at5;
    const users = packet.properties?.userProperties ?? {};
    expect(Object.getOwnPropertyNames(users).sort()).toEqual(['__proto__', 'constructor', 'toString']);
    expect(Object.getOwnPropertyDescriptor(users, '__proto__')?.value).toBe('polluted');
    expect(Object.getOwnPropertyDescriptor(users, 'constructor')?.value).toBe('c');
  });

  it('publishes without properties when the request sets none, as before', async () => {
    const topic = 'dp/pi-1/plain';
    const at5 = nextMessage(sub5, topic);
    await run.data.send(new PublishCommand({ topic, payload: enc.encode('plain') }));
    const packet = await at5;
    expect(packet.payload.toString()).toBe('plain');
    expect(packet.properties ?? {}).toEqual({});
  });

  it('keeps the properties of a retained Publish for an MQTT 5 subscriber that comes later', async () => {
    const topic = 'dp/pi-1/retained';
    const arrived = nextMessage(sub5, topic);
    await run.data.send(
      new PublishCommand({
        topic,
        retain: true,
        payload: enc.encode('kept'),
        userProperties: '[{"kind":"retained"}]',
        contentType: 'text/plain',
      }),
    );
    await arrived;
    const thing = await provisionThing(run, 'dp-late', { policy: ALLOW_ALL, policyName: 'all-dp-late' });
    const late = await mqtt.connectAsync({ ...thingMqttOptions(run.info, thing), protocolVersion: 5 });
    try {
      const retained = nextMessage(late, topic);
      await late.subscribeAsync(topic, { qos: 1 });
      const packet = await retained;
      expect(packet.retain).toBe(true);
      expect(packet.payload.toString()).toBe('kept');
      expect({ ...packet.properties?.userProperties }).toEqual({ kind: 'retained' });
      expect(packet.properties?.contentType).toBe('text/plain');
    } finally {
      await late.endAsync();
    }
  });

  it('sends UNSPECIFIED_BYTES as format indicator 0', async () => {
    const topic = 'dp/pi-1/bytes';
    const at5 = nextMessage(sub5, topic);
    await run.data.send(
      new PublishCommand({ topic, payload: new Uint8Array([1, 2, 3]), payloadFormatIndicator: 'UNSPECIFIED_BYTES' }),
    );
    expect((await at5).properties?.payloadFormatIndicator).toBe(false);
  });

  const bad: [string, () => PublishCommand, string][] = [
    [
      'user properties that are not base64',
      () => withRawHeader({ topic: 'dp/bad/1' }, 'x-amz-mqtt5-user-properties', '[{"a":"b"}]'),
      'userProperties must be base64-encoded JSON',
    ],
    [
      'user properties that are not JSON',
      () => new PublishCommand({ topic: 'dp/bad/2', userProperties: '{deviceName: alpha' }),
      'userProperties must be a JSON array of objects',
    ],
    [
      'user properties that are a JSON object, not an array',
      () => new PublishCommand({ topic: 'dp/bad/3', userProperties: '{"deviceName":"alpha"}' }),
      'userProperties must be a JSON array of objects',
    ],
    [
      'a user property whose value is not a string',
      () => new PublishCommand({ topic: 'dp/bad/4', userProperties: '[{"deviceCnt":45}]' }),
      'userProperties[0].deviceCnt must be a string, not 45',
    ],
    [
      'a user property array element that is not an object',
      () => new PublishCommand({ topic: 'dp/bad/5', userProperties: '[{"a":"b"},"c"]' }),
      'userProperties[1] must be an object of string values',
    ],
    [
      'an unknown payload format indicator',
      () =>
        new PublishCommand({
          topic: 'dp/bad/6',
          payloadFormatIndicator: 'UTF16' as PublishCommandInput['payloadFormatIndicator'],
        }),
      'payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES, not "UTF16"',
    ],
    [
      'correlation data that is not base64',
      () => new PublishCommand({ topic: 'dp/bad/7', correlationData: 'not base64!' }),
      'correlationData must be base64-encoded',
    ],
    [
      'a response topic with a wildcard',
      () => new PublishCommand({ topic: 'dp/bad/8', responseTopic: 'dp/+/replies' }),
      'responseTopic must not contain wildcard characters',
    ],
    [
      'a negative message expiry',
      () => new PublishCommand({ topic: 'dp/bad/9', messageExpiry: -1 }),
      'messageExpiry must be a whole number of seconds from 0 to 4294967295, not "-1"',
    ],
    [
      'a message expiry beyond MQTT 5 four-byte integer',
      () => new PublishCommand({ topic: 'dp/bad/10', messageExpiry: 2 ** 32 }),
      'messageExpiry must be a whole number of seconds',
    ],
    [
      'a content type with a NUL character',
      () => new PublishCommand({ topic: 'dp/bad/11', contentType: 'text/plain\u0000' }),
      'contentType must not contain a NUL character',
    ],
  ];

  it.each(bad)('refuses %s with 400 InvalidRequestException and publishes nothing', async (_what, command, message) => {
    const sent = command();
    const err = await publishError(sent);
    expect(err).toBeInstanceOf(InvalidRequestException);
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 400 } });
    expect((err as Error).message).toContain(message);
    // A good publish after it arrives; the bad one never reached the broker.
    const after = nextMessage(sub5, 'dp/after');
    await run.data.send(new PublishCommand({ topic: 'dp/after', payload: enc.encode('ok') }));
    await after;
    expect(seen.filter((m) => m.topic === sent.input.topic)).toEqual([]);
  });
});
