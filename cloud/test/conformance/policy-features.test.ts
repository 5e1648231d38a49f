import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  GetPolicyCommand,
  MalformedPolicyException,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { type IotPolicyDocument, MQTT5_REASON } from '@pifleet/protocol';
import { connectAsync, type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { type Core, coreForFile, type Device, within } from './harness.js';

/**
 * Issue 18's policy features end to end: the composed local core, things, certificates and
 * policies made through the real `@aws-sdk/client-iot`, and mqtt.js over MQTT 5 as the device, so
 * every refusal is the PUBACK or SUBACK reason code 0x87 (Not authorized) IoT Core answers.
 * Policies use thing policy variables (`${iot:Connection.Thing.Attributes[site]}`), NotAction and
 * NotResource, date and IP conditions; CreatePolicy refuses what the local core cannot evaluate.
 */

let core: Core;
const { opened, arn } = coreForFile('policy-features', (started) => {
  core = started;
});

/** Connect as the own thing, only with a certificate attached to it (the recommended statement). */
const connectAsThing = () =>
  ({
    Effect: 'Allow',
    Action: 'iot:Connect',
    Resource: arn('client', '${iot:Connection.Thing.ThingName}'),
    Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
  }) as const;

/** A thing with these attributes, a new active certificate, and its own policy attached. */
async function thingWith(
  thingName: string,
  attributes: Record<string, string>,
  statements: IotPolicyDocument['Statement'],
): Promise<Device> {
  await core.iot.send(new CreateThingCommand({ thingName, attributePayload: { attributes } }));
  const cert = await core.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (!cert.certificateArn || !cert.certificatePem || !cert.keyPair?.PrivateKey) throw new Error('no certificate');
  const policyName = `policy-${thingName}`;
  const policyDocument = JSON.stringify({ Version: '2012-10-17', Statement: statements });
  await core.iot.send(new CreatePolicyCommand({ policyName, policyDocument }));
  await core.iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
  await core.iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  return { thingName, certPem: cert.certificatePem, keyPem: cert.keyPair.PrivateKey };
}

async function mqtt5(device: Device): Promise<MqttClient> {
  const client = await within(
    connectAsync({ ...thingMqttOptions(core.info, device), protocolVersion: 5 }),
    10_000,
    `connect ${device.thingName}`,
  );
  opened.push({ close: () => client.endAsync() });
  return client;
}

/** The reason code of the PUBACK (QoS 1): 0 for success. */
function puback(client: MqttClient, topic: string, payload = 'x'): Promise<number> {
  return within(
    new Promise<number>((resolve) => {
      client.publish(topic, payload, { qos: 1 }, (err) => resolve(err ? ((err as { code?: number }).code ?? -1) : 0));
    }),
    5_000,
    `PUBACK for ${topic}`,
  );
}

/** The reason code of the SUBACK for one filter: the granted QoS, or 0x80 and up when refused. */
function suback(client: MqttClient, filter: string): Promise<number> {
  return within(
    new Promise<number>((resolve) => {
      client.subscribe(filter, { qos: 1 }, (err, granted) => {
        // mqtt.js 5 fails the subscribe with the SUBACK packet attached; its reason codes are in `granted`.
        const refused = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted?.[0];
        resolve(err ? (refused ?? -1) : (granted?.[0]?.qos ?? -1));
      });
    }),
    5_000,
    `SUBACK for ${filter}`,
  );
}

/** What a subscriber received, waiting on the message itself. */
function inbox(client: MqttClient) {
  const topics: string[] = [];
  const waiters: Array<{ topic: string; resolve: () => void }> = [];
  client.on('message', (topic) => {
    topics.push(topic);
    for (const w of waiters.filter((x) => x.topic === topic)) w.resolve();
  });
  return {
    topics,
    received: (topic: string) =>
      topics.includes(topic)
        ? Promise.resolve()
        : within(new Promise<void>((resolve) => waiters.push({ topic, resolve })), 5_000, `message on ${topic}`),
  };
}

describe('thing attributes as policy variables', () => {
  const sitePolicy = () =>
    [
      connectAsThing(),
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: arn('topic', 'sites/${iot:Connection.Thing.Attributes[site]}/*'),
      },
    ] as IotPolicyDocument['Statement'];

  it('lets a thing publish only under its own site, and a thing without the attribute nowhere', async () => {
    const watcher = await mqtt5(
      await thingWith('site-watcher', {}, [
        connectAsThing(),
        { Effect: 'Allow', Action: ['iot:Subscribe', 'iot:Receive'], Resource: '*' },
      ]),
    );
    const seen = inbox(watcher);
    expect(await suback(watcher, 'sites/#')).toBe(1);

    const a = await mqtt5(await thingWith('site-a-1', { site: 'plant-a' }, sitePolicy()));
    const b = await mqtt5(await thingWith('site-b-1', { site: 'plant-b' }, sitePolicy()));
    const none = await mqtt5(await thingWith('site-none-1', { floor: '3' }, sitePolicy()));

    expect(await puback(a, 'sites/plant-a/t')).toBe(0);
    expect(await puback(a, 'sites/plant-b/t')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(b, 'sites/plant-b/t')).toBe(0);
    expect(await puback(b, 'sites/plant-a/t')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    // No attribute: the variable does not resolve, and the statement matches nothing.
    expect(await puback(none, 'sites//t')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(none, 'sites/${iot:Connection.Thing.Attributes[site]}/t')).toBe(MQTT5_REASON.NOT_AUTHORIZED);

    await seen.received('sites/plant-a/t');
    await seen.received('sites/plant-b/t');
    // A refused PUBLISH keeps the connection (MQTT 5) and goes nowhere; the allowed ones arrive once.
    expect(await puback(a, 'sites/plant-a/after')).toBe(0);
    await seen.received('sites/plant-a/after');
    expect(seen.topics.sort()).toEqual(['sites/plant-a/after', 'sites/plant-a/t', 'sites/plant-b/t']);
  });

  it('reads the thing type and attributes in conditions (the Developer Guide thing policy example)', async () => {
    const device = await mqtt5(
      await thingWith('stats-1', { attributeName: 'attributeValue' }, [
        connectAsThing(),
        {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: arn('topic', 'device/stats'),
          Condition: {
            StringEquals: { 'iot:Connection.Thing.Attributes[attributeName]': 'attributeValue' },
            Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
          },
        },
        {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: arn('topic', 'device/typed'),
          Condition: { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'Thing_Type_Name' } },
        },
      ]),
    );
    expect(await puback(device, 'device/stats')).toBe(0);
    // The thing has no type: ThingTypeName is missing, and StringEquals on a missing key is false.
    expect(await puback(device, 'device/typed')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
  });
});

describe('NotAction and NotResource', () => {
  it('allows every action but the listed ones, and denies every resource but the listed ones', async () => {
    const device = await mqtt5(
      await thingWith('negated-1', {}, [
        // Allow + NotAction: connect, publish and receive, never subscribe.
        { Sid: 'AllButSubscribe', Effect: 'Allow', NotAction: 'iot:Subscribe', Resource: '*' },
        // Deny + NotResource: publishing is denied everywhere except under open/.
        { Sid: 'OnlyOpen', Effect: 'Deny', Action: 'iot:Publish', NotResource: arn('topic', 'open/*') },
      ]),
    );
    expect(await puback(device, 'open/1')).toBe(0);
    expect(await puback(device, 'closed/1')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(device, 'open')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await suback(device, 'open/#')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(device, 'open/2')).toBe(0);
  });
});

describe('date and IP conditions', () => {
  it('grants by aws:CurrentTime and aws:SourceIp (the device connects from 127.0.0.1)', async () => {
    const guarded = (topic: string, Condition: Record<string, Record<string, string | string[]>>) => ({
      Effect: 'Allow' as const,
      Action: 'iot:Publish',
      Resource: arn('topic', topic),
      Condition,
    });
    const device = await mqtt5(
      await thingWith('conditions-1', {}, [
        connectAsThing(),
        guarded('time/since-2020', { DateGreaterThan: { 'aws:CurrentTime': '2020-01-01T00:00:00Z' } }),
        guarded('time/until-2020', { DateLessThan: { 'aws:CurrentTime': '2020-01-01T00:00:00Z' } }),
        guarded('time/epoch', { NumericGreaterThan: { 'aws:EpochTime': '1577836800' } }),
        guarded('ip/loopback', { IpAddress: { 'aws:SourceIp': ['127.0.0.0/8', '::1'] } }),
        guarded('ip/documentation', { IpAddress: { 'aws:SourceIp': '203.0.113.0/24' } }),
        guarded('ip/not-documentation', { NotIpAddress: { 'aws:SourceIp': '203.0.113.0/24' } }),
        guarded('tls', { Bool: { 'aws:SecureTransport': 'true' } }),
        { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', 'ip/blocked') },
        {
          Effect: 'Deny',
          Action: 'iot:Publish',
          Resource: arn('topic', 'ip/blocked'),
          Condition: { IpAddress: { 'aws:SourceIp': '127.0.0.1' } },
        },
      ]),
    );
    expect(await puback(device, 'time/since-2020')).toBe(0);
    expect(await puback(device, 'time/until-2020')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(device, 'time/epoch')).toBe(0);
    expect(await puback(device, 'ip/loopback')).toBe(0);
    expect(await puback(device, 'ip/documentation')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(device, 'ip/not-documentation')).toBe(0);
    expect(await puback(device, 'ip/blocked')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(device, 'tls')).toBe(0);
    // Time-dependent decisions are asked again each time, not cached: the answer stays right.
    expect(await puback(device, 'time/since-2020')).toBe(0);
    expect(await puback(device, 'time/until-2020')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
  });
});

describe('CreatePolicy refuses what the local core cannot evaluate', () => {
  const statement = { Effect: 'Allow', Action: 'iot:Publish', Resource: '*' };
  it.each<[string, unknown, string]>([
    [
      'both Action and NotAction',
      { ...statement, NotAction: 'iot:Connect' },
      'Policy statement 0: A statement must have exactly one of Action and NotAction.',
    ],
    [
      'neither Resource nor NotResource',
      { Effect: 'Allow', NotAction: 'iot:Connect' },
      'Policy statement 0: A statement must have exactly one of Resource and NotResource.',
    ],
    [
      'an operator IAM does not have',
      { ...statement, Condition: { DateAfter: { 'aws:CurrentTime': '2020' } } },
      'Policy statement 0: Condition operator DateAfter is not supported.',
    ],
    [
      'a key the local core does not evaluate',
      { ...statement, Condition: { StringEquals: { 'iot:Certificate.Subject.AlternativeName.DNSName': 'x' } } },
      "Policy statement 0: Condition key iot:Certificate.Subject.AlternativeName.DNSName is not evaluated by the local IoT Core: the broker does not read the certificate's alternative names.",
    ],
    [
      'an address range that is not one',
      { ...statement, Condition: { IpAddress: { 'aws:SourceIp': '127.0.0.0/40' } } },
      "Policy statement 0: Condition IpAddress value '127.0.0.0/40' for aws:SourceIp is not an IPv4 or IPv6 address or CIDR range.",
    ],
  ])('%s: MalformedPolicyException (400), and no policy is created', async (name, s, message) => {
    const policyName = `refused-${name.replace(/[^a-z]+/gi, '-')}`;
    const err = await core.iot
      .send(
        new CreatePolicyCommand({
          policyName,
          policyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [s] }),
        }),
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(MalformedPolicyException);
    expect((err as MalformedPolicyException).$metadata.httpStatusCode).toBe(400);
    expect((err as MalformedPolicyException).message).toBe(message);
    await expect(core.iot.send(new GetPolicyCommand({ policyName }))).rejects.toBeInstanceOf(ResourceNotFoundException);
  });
});
