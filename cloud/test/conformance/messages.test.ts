import {
  appTopics,
  type IotPolicyDocument,
  MQTT_PROTOCOLS,
  type MqttProtocol,
  mqtt5ReasonName,
} from '@pifleet/protocol';
import { mqtt5 } from 'aws-iot-device-sdk-v2';
import { describe, expect, it } from 'vitest';
import {
  type ConnectOptions,
  type Core,
  connectDevice,
  coreForFile,
  type DeviceClient,
  deniedSubscribeCode,
  provisionThing,
  rawSubscribe,
  type Subscription,
} from './harness.js';

/**
 * Messages between devices through the local IoT Core, for every pair of protocols: the MQTT 5
 * message properties travel end to end between MQTT 5 clients, an MQTT 3.1.1 subscriber gets the
 * message without them, and a 3.1.1 publisher's message reaches MQTT 5 subscribers without any
 * ("MQTT 5 properties" in the AWS IoT Developer Guide). Shared subscriptions `$share/{group}/{filter}`
 * deliver each message to one member of the group, whatever protocol each member speaks, and
 * iot:Subscribe is checked on the `topicfilter/$share/{group}/{filter}` resource.
 */

let core: Core;
const { opened, arn } = coreForFile('conf-msg', (started) => {
  core = started;
});

const short = (protocol: MqttProtocol) => (protocol === '5' ? 'v5' : 'v3');

/** A lab client: may publish, subscribe (plainly and in any share group) and receive under `lab/`. */
async function labClient(name: string, protocol: MqttProtocol, options: ConnectOptions = {}): Promise<DeviceClient> {
  const policy: IotPolicyDocument = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: arn('topic', 'lab/*') },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: [arn('topicfilter', 'lab/*'), arn('topicfilter', '$share/*/lab/*')],
      },
    ],
  };
  const client = await connectDevice(core, await provisionThing(core, name, { policy }), protocol, options);
  opened.push(client);
  return client;
}

const pairs = MQTT_PROTOCOLS.flatMap((publisher) => MQTT_PROTOCOLS.map((subscriber) => ({ publisher, subscriber })));

describe('message properties between protocols', () => {
  it.each(pairs)('publisher on MQTT $publisher, subscriber on MQTT $subscriber', async ({ publisher, subscriber }) => {
    const pair = `${short(publisher)}-${short(subscriber)}`;
    const topic = `lab/props/${pair}`;
    const from = await labClient(`props-pub-${pair}`, publisher);
    const to = await labClient(`props-sub-${pair}`, subscriber);
    const inbox = await rawSubscribe(to, topic);
    expect(inbox.granted).toBe(true);

    const properties = {
      payloadFormat: mqtt5.PayloadFormatIndicator.Utf8,
      contentType: 'application/json',
      responseTopic: `lab/reply/${pair}`,
      correlationData: new TextEncoder().encode('req-42'),
      messageExpiryIntervalSeconds: 600,
      userProperties: [
        { name: 'site', value: 'greenhouse' },
        { name: 'site', value: 'north' },
      ],
    };
    // A 3.1.1 client has no properties to send.
    const ack = await from.publish(topic, '{"t":21.5}', 1, publisher === '5' ? properties : {});
    if (publisher === '5') expect(mqtt5ReasonName(ack ?? -1)).toBe('SUCCESS');
    const got = await inbox.waitFor(() => true);
    expect(got.payload).toEqual({ t: 21.5 });

    if (subscriber === '3.1.1') return; // a 3.1.1 PUBLISH has nowhere to carry them
    const packet = got.packet;
    if (packet === undefined) throw new Error('an MQTT 5 client received no packet');
    if (publisher === '5') {
      expect(packet).toMatchObject({
        payloadFormat: mqtt5.PayloadFormatIndicator.Utf8,
        contentType: 'application/json',
        responseTopic: `lab/reply/${pair}`,
        userProperties: properties.userProperties,
      });
      expect(new TextDecoder().decode(packet.correlationData as ArrayBuffer)).toBe('req-42');
      // The broker forwards the remaining lifetime (MQTT 5 section 3.3.2.3.3).
      expect(packet.messageExpiryIntervalSeconds).toBeGreaterThan(0);
      expect(packet.messageExpiryIntervalSeconds).toBeLessThanOrEqual(600);
    } else {
      for (const key of [
        'payloadFormat',
        'contentType',
        'responseTopic',
        'correlationData',
        'messageExpiryIntervalSeconds',
      ] as const) {
        expect(packet[key], key).toBeUndefined();
      }
      // aws-crt reports "no user properties" as an empty list.
      expect(packet.userProperties ?? []).toEqual([]);
    }
  });
});

describe('topic aliases', () => {
  it.each(MQTT_PROTOCOLS)(
    'resolves the aliases of an MQTT 5 publisher that reuses the 8 the CONNACK allows (subscriber on MQTT %s)',
    async (subscriberProtocol) => {
      const v = short(subscriberProtocol);
      const from = await labClient(`alias-pub-${v}`, '5', { topicAliases: true });
      if (from.native.protocol === '5') expect(from.native.connack.topicAliasMaximum).toBe(8);
      const to = await labClient(`alias-sub-${v}`, subscriberProtocol);
      const inbox = await rawSubscribe(to, `lab/alias-${v}/#`);
      // Ten topics, twice round: more topics than aliases, so the SDK reassigns aliases as it goes.
      const topics = [0, 1].flatMap(() => Array.from({ length: 10 }, (_, i) => `lab/alias-${v}/t${i}`));
      for (const [n, topic] of topics.entries()) {
        expect(await from.publish(topic, JSON.stringify({ n }))).toBe(0);
      }
      await inbox.waitFor((m) => (m.payload as { n?: number }).n === topics.length - 1);
      expect(inbox.messages.map((m) => [m.topic, (m.payload as { n: number }).n])).toEqual(
        topics.map((topic, n) => [topic, n]),
      );
    },
  );
});

describe('shared subscriptions', () => {
  it.each([
    { members: ['5', '5'] as const },
    { members: ['3.1.1', '3.1.1'] as const },
    { members: ['5', '3.1.1'] as const },
  ])('deliver each message to one member of the group (members on MQTT $members)', async ({ members }) => {
    const group = `g-${members.map(short).join('-')}`;
    const topic = `lab/shared/${group}`;
    const subscriptions: Subscription[] = [];
    const ends: Subscription[] = [];
    for (const [i, protocol] of members.entries()) {
      const client = await labClient(`share-${group}-${i}`, protocol);
      const sub = await rawSubscribe(client, `$share/${group}/${topic}`);
      expect(sub.granted, `member ${i}`).toBe(true);
      subscriptions.push(sub);
      ends.push(await rawSubscribe(client, `${topic}/end`));
    }
    const publisher = await labClient(`share-pub-${group}`, '5');
    for (let n = 0; n < 6; n++) await publisher.publish(topic, JSON.stringify({ n }));
    // Published after the six, on a plain subscription of every member: once each member has it,
    // each has every shared message the broker sent it.
    await publisher.publish(`${topic}/end`, '{}');
    for (const end of ends) await end.waitFor(() => true);
    const delivered = subscriptions.flatMap((s) => s.messages.map((m) => (m.payload as { n: number }).n));
    // Each message once across the group, none twice.
    expect(delivered.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it.each(MQTT_PROTOCOLS)('checks iot:Subscribe on the $share resource (MQTT %s)', async (protocol) => {
    // The recommended policy allows the device's own commands filter, not a share group of it.
    const thing = `share-denied-${short(protocol)}`;
    const device = await connectDevice(core, await provisionThing(core, thing), protocol);
    opened.push(device);
    const denied = await rawSubscribe(device, `$share/g/${appTopics.commands(thing)}`);
    expect(denied.code).toBe(deniedSubscribeCode(protocol));
    const own = await rawSubscribe(device, appTopics.commands(thing));
    expect(own.granted).toBe(true);
  });
});
