import path from 'node:path';
import { UpdateCertificateCommand } from '@aws-sdk/client-iot';
import {
  appTopics,
  type IotPolicyDocument,
  LIMITS,
  MQTT_PROTOCOLS,
  MQTT5_REASON,
  type MqttProtocol,
  shadowTopics,
} from '@pifleet/protocol';
import { mqtt5 } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateIdOf, loadOrCreateCa } from '../../src/ca/local-ca.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';
import { IOT_CORE_CONNACK } from '../broker/fixtures.js';
import {
  type ConnectOptions,
  ConnectRefused,
  type Core,
  connackReturnCode311,
  connectDevice,
  coreForFile,
  type Device,
  type DeviceClient,
  deniedSubscribeCode,
  provisionThing,
  rawSubscribe,
} from './harness.js';

/**
 * Issue 3's negative cases end to end, over MQTT 3.1.1 and MQTT 5: the composed local core
 * (registry, CA, broker with IoT policies), certificates issued by its control plane through the
 * real `@aws-sdk/client-iot`, and the real device SDK over mutual TLS as the client. Where the
 * protocols differ, each case asserts what IoT Core does on that protocol ("MQTT 5 supported
 * features", "AWS IoT differences from MQTT specifications" in the Developer Guide): a refused
 * PUBLISH closes a 3.1.1 connection but is a PUBACK 0x87 on MQTT 5, which keeps the connection.
 */

/** MQTT 3.1.1's CONNACK return code 5, "Connection Refused, not authorized" (3.1.1 section 3.2.2.3). */
const CONNACK_311_NOT_AUTHORIZED = 5;

let dir: string;
let core: Core;
const { opened, arn } = coreForFile('security-core', (started) => {
  core = started;
});

beforeAll(() => {
  dir = tempDir('security');
});

afterAll(() => {
  removeDir(dir);
});

async function setStatus(device: Device, newStatus: 'ACTIVE' | 'INACTIVE' | 'REVOKED'): Promise<void> {
  await core.iot.send(new UpdateCertificateCommand({ certificateId: certificateIdOf(device.certPem), newStatus }));
}

/** Short thing names per protocol, so both runs share one core without sharing a thing. */
const nameOf = (protocol: MqttProtocol, base: string) => `${base}-v${protocol === '5' ? '5' : '3'}`;

async function connected(
  protocol: MqttProtocol,
  device: Device,
  clientId?: string,
  options: ConnectOptions = {},
): Promise<DeviceClient> {
  const client = await connectDevice(
    core,
    device,
    protocol,
    clientId === undefined ? options : { ...options, clientId },
  );
  opened.push(client);
  return client;
}

/** What connecting rejected with (the test fails if it connected). */
async function refusal(protocol: MqttProtocol, device: Device, clientId?: string): Promise<ConnectRefused> {
  const outcome = await connectDevice(core, device, protocol, clientId === undefined ? {} : { clientId }).then(
    async (client) => {
      await client.close();
      return new Error('connected');
    },
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(ConnectRefused);
  return outcome as ConnectRefused;
}

describe.each(MQTT_PROTOCOLS)('local IoT Core security with the device SDK over MQTT %s', (protocol) => {
  const v5 = protocol === '5';

  it('acknowledges a device publishing its own telemetry and refuses a publish as another thing', async () => {
    const self = nameOf(protocol, 'sec-a');
    const other = nameOf(protocol, 'sec-b');
    const client = await connected(protocol, await provisionThing(core, self));
    await provisionThing(core, other);
    expect(await client.publish(appTopics.telemetry(self), '{"ok":true}')).toBe(v5 ? MQTT5_REASON.SUCCESS : undefined);
    if (v5) {
      // PUBACK 0x87 and the connection stays: a QoS 0 spoof is dropped, the next own publish is acknowledged.
      expect(await client.publish(appTopics.telemetry(other), '{"spoof":true}')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
      await client.publish(appTopics.telemetry(other), '{"spoof":0}', 0);
      expect(await client.publish(appTopics.telemetry(self), '{"still":true}')).toBe(MQTT5_REASON.SUCCESS);
      expect(client.drops).toEqual([]);
    } else {
      void client.publish(appTopics.telemetry(other), '{"spoof":true}').catch(() => undefined);
      expect(await client.dropped()).toEqual({ reasonCode: undefined });
    }
  });

  it(`refuses a retained PUBLISH without iot:RetainPublish${v5 ? ': PUBACK 0x87' : ' by closing the connection'}`, async () => {
    const self = nameOf(protocol, 'sec-retain');
    const client = await connected(protocol, await provisionThing(core, self));
    // The recommended policy allows retaining the status topic only.
    expect(await client.publish(appTopics.status(self), '{"online":true}', 1, { retain: true })).toBe(
      v5 ? MQTT5_REASON.SUCCESS : undefined,
    );
    if (v5) {
      expect(await client.publish(appTopics.telemetry(self), '{}', 1, { retain: true })).toBe(
        MQTT5_REASON.NOT_AUTHORIZED,
      );
      expect(await client.publish(appTopics.telemetry(self), '{}')).toBe(MQTT5_REASON.SUCCESS);
      expect(client.drops).toEqual([]);
    } else {
      void client.publish(appTopics.telemetry(self), '{}', 1, { retain: true }).catch(() => undefined);
      expect(await client.dropped()).toEqual({ reasonCode: undefined });
    }
  });

  it('refuses a SUBSCRIBE the policy denies with its protocol code, keeps the connection and the permitted filters', async () => {
    const self = nameOf(protocol, 'sec-sub');
    const client = await connected(protocol, await provisionThing(core, self));
    const denied = await rawSubscribe(client, shadowTopics('someone-else').updateAccepted);
    expect(denied.code).toBe(deniedSubscribeCode(protocol));
    const own = await rawSubscribe(client, appTopics.commands(self));
    expect(own.code).toBe(MQTT5_REASON.GRANTED_QOS_1);
    expect(client.drops).toEqual([]);
    if (client.native.protocol === '5') {
      // One SUBSCRIBE with both filters: each gets its own reason code.
      const suback = await client.native.client.subscribe({
        subscriptions: [
          { topicFilter: shadowTopics(self).updateAccepted, qos: mqtt5.QoS.AtLeastOnce },
          { topicFilter: '$aws/things/+/shadow/update/accepted', qos: mqtt5.QoS.AtLeastOnce },
        ],
      });
      expect(suback.reasonCodes).toEqual([MQTT5_REASON.GRANTED_QOS_1, MQTT5_REASON.NOT_AUTHORIZED]);
    }
  });

  it('refuses a certificate from a CA the core does not know', async () => {
    const foreign = await loadOrCreateCa({ dir: path.join(dir, `foreign-ca-${protocol}`), now: Date.now });
    const issued = await foreign.createKeysAndCertificate();
    const stranger: Device = {
      thingName: nameOf(protocol, 'sec-stranger'),
      certPem: issued.certificatePem,
      keyPem: issued.privateKeyPem,
    };
    // The TLS handshake fails: there is no CONNACK to carry a reason.
    expect((await refusal(protocol, stranger)).reasonCode).toBeUndefined();
  });

  it.each(['INACTIVE', 'REVOKED'] as const)('refuses an %s certificate: CONNACK Not authorized', async (status) => {
    const device = await provisionThing(core, nameOf(protocol, `sec-${status.toLowerCase()}`));
    await (await connectDevice(core, device, protocol)).close(); // accepted while ACTIVE
    await setStatus(device, status);
    const refused = await refusal(protocol, device);
    if (v5) expect(refused.reasonCode).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    else expect(await connackReturnCode311(core, device)).toBe(CONNACK_311_NOT_AUTHORIZED);
  });

  it('refuses a CONNECT iot:Connect denies (a client id that is not the thing name): CONNACK Not authorized', async () => {
    const device = await provisionThing(core, nameOf(protocol, 'sec-cid'));
    const refused = await refusal(protocol, device, 'not-my-thing-name');
    if (v5) expect(refused.reasonCode).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    else expect(await connackReturnCode311(core, device, 'not-my-thing-name')).toBe(CONNACK_311_NOT_AUTHORIZED);
  });

  it(`closes an open session when its certificate becomes INACTIVE${v5 ? ': DISCONNECT 0x87 Not authorized' : ''}`, async () => {
    const device = await provisionThing(core, nameOf(protocol, 'sec-live'));
    const client = await connected(protocol, device);
    await setStatus(device, 'INACTIVE');
    expect(await client.dropped()).toEqual({ reasonCode: v5 ? MQTT5_REASON.NOT_AUTHORIZED : undefined });
  });

  it(`answers a payload over 128 KB with ${v5 ? 'DISCONNECT 0x95 Packet too large' : 'a closed connection'}`, async () => {
    const self = nameOf(protocol, 'sec-big');
    const client = await connected(protocol, await provisionThing(core, self));
    const payload = new Uint8Array(LIMITS.maxMessageBytes + 1).fill(0x61);
    void client.publish(appTopics.telemetry(self), payload).catch(() => undefined);
    expect(await client.dropped()).toEqual({ reasonCode: v5 ? MQTT5_REASON.PACKET_TOO_LARGE : undefined });
  });

  it(`answers an invalid topic name with ${v5 ? 'PUBACK 0x90 and keeps the connection' : 'a closed connection'}`, async () => {
    // A policy that allows any topic, so that the topic's validity is what is judged.
    const name = nameOf(protocol, 'sec-topic');
    const anyTopic: IotPolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
        { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', '*') },
      ],
    };
    const client = await connected(protocol, await provisionThing(core, name, { policy: anyTopic }));
    const tooDeep = 'a/b/c/d/e/f/g/h/i'; // eight slashes: IoT Core allows seven
    if (v5) {
      expect(await client.publish(tooDeep, '{}')).toBe(MQTT5_REASON.TOPIC_NAME_INVALID);
      expect(await client.publish(`lab/${'x'.repeat(253)}`, '{}')).toBe(MQTT5_REASON.TOPIC_NAME_INVALID);
      expect(await client.publish('lab/ok', '{}')).toBe(MQTT5_REASON.SUCCESS);
      expect(client.drops).toEqual([]);
    } else {
      void client.publish(tooDeep, '{}').catch(() => undefined);
      await client.dropped();
    }
  });

  it(`takes a session over for a second connection with the same client id${v5 ? ': DISCONNECT 0x8E to the first' : ''}`, async () => {
    const device = await provisionThing(core, nameOf(protocol, 'sec-twice'));
    const first = await connected(protocol, device);
    const second = await connected(protocol, device);
    expect(await first.dropped()).toEqual({ reasonCode: v5 ? MQTT5_REASON.SESSION_TAKEN_OVER : undefined });
    // The second is the session now: it publishes and is acknowledged.
    await first.close();
    expect(await second.publish(appTopics.telemetry(device.thingName), '{}')).toBe(
      v5 ? MQTT5_REASON.SUCCESS : undefined,
    );
    expect(second.drops).toEqual([]);
  });
});

describe('MQTT 5 only: what the CONNACK advertises', () => {
  it('advertises IoT Core limits and features to an MQTT 5 client', async () => {
    const client = await connected('5', await provisionThing(core, 'sec-connack'));
    if (client.native.protocol !== '5') throw new Error('not an MQTT 5 client');
    expect(client.native.connack).toMatchObject(IOT_CORE_CONNACK);
    // A keep-alive of 30 s is inside IoT Core's 30-1200 s range: no Server Keep Alive override.
    expect(client.native.connack.serverKeepAlive).toBeUndefined();
  });

  it('ends a session that sends a subscription identifier the CONNACK said is not available: DISCONNECT 0xA1', async () => {
    const client = await connected('5', await provisionThing(core, 'sec-subid'));
    if (client.native.protocol !== '5') throw new Error('not an MQTT 5 client');
    expect(client.native.connack.subscriptionIdentifiersAvailable).toBe(false);
    // The SUBSCRIBE is never answered (the SDK would send it again after a reconnect): not awaited.
    void client.native.client
      .subscribe({
        subscriptions: [{ topicFilter: appTopics.commands('sec-subid'), qos: mqtt5.QoS.AtLeastOnce }],
        subscriptionIdentifier: 7,
      })
      .catch(() => undefined);
    expect(await client.dropped()).toEqual({ reasonCode: MQTT5_REASON.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED });
  });

  it.each([
    { asked: 10, given: 30 },
    { asked: 1300, given: 1200 },
  ])('answers a keep-alive of $asked s with Server Keep Alive $given s', async ({ asked, given }) => {
    const device = await provisionThing(core, `sec-keepalive-${asked}`);
    const client = await connected('5', device, undefined, { keepAliveSeconds: asked });
    if (client.native.protocol !== '5') throw new Error('not an MQTT 5 client');
    expect(client.native.connack.serverKeepAlive).toBe(given);
  });
});
