import { webcrypto } from 'node:crypto';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingGroupCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  ListAttachedPoliciesCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  UpdateProvisioningTemplateCommand,
} from '@aws-sdk/client-iot';
import {
  appTopics,
  type IotPolicyDocument,
  MQTT_PROTOCOLS,
  MQTT5_REASON,
  type MqttProtocol,
  type PreProvisioningHookEvent,
  provisionTopics,
  RECOMMENDED_POLICY_NAME,
  recommendedDevicePolicy,
} from '@pifleet/protocol';
import { iotidentity } from 'aws-iot-device-sdk-v2';
import { connectAsync } from 'mqtt';
import { describe, expect, it } from 'vitest';
import * as x509 from '../../src/ca/x509.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { type Core, connectDevice, coreForFile, type DeviceClient, settle, within } from '../conformance/harness.js';

/**
 * RegisterThing against the in-process core, as devices send it: the device SDK's identity client
 * (`IotIdentityClientv2`, aws-crt) over MQTT 3.1.1 and 5 holding a claim certificate, a key made on
 * the device and a CSR, and the control plane seen through the real @aws-sdk/client-iot. The hooks
 * are in-process functions named by the templates' Lambda ARNs.
 */

const hookEvents: PreProvisioningHookEvent[] = [];
const hooks = {
  'allow-and-override': async (event: PreProvisioningHookEvent) => {
    hookEvents.push(event);
    return { allowProvisioning: true, parameterOverrides: { Model: 'checked-by-hook' } };
  },
  deny: async (event: PreProvisioningHookEvent) => {
    hookEvents.push(event);
    return { allowProvisioning: false };
  },
  throws: async () => {
    throw new Error('the hook fell over');
  },
};

let core: Core;
const { opened, arn } = coreForFile(
  'register-thing',
  (started) => {
    core = started;
  },
  { provisioningHooks: hooks },
);

const GROUP = 'claimed';

/** A template in the shape of pifleet's: thing from the serial, a group, the device policy, the certificate made ACTIVE. */
function templateBody(options: { deviceConfiguration?: boolean } = {}): string {
  return JSON.stringify({
    Parameters: {
      SerialNumber: { Type: 'String' },
      Model: { Type: 'String', Default: 'unknown' },
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { 'Fn::Join': ['', ['pi-', { Ref: 'SerialNumber' }]] },
          AttributePayload: { serial: { Ref: 'SerialNumber' }, model: { Ref: 'Model' } },
          ThingGroups: [GROUP],
        },
        OverrideSettings: { AttributePayload: 'MERGE', ThingGroups: 'DO_NOTHING' },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
      },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: RECOMMENDED_POLICY_NAME } },
    },
    ...(options.deviceConfiguration === false
      ? {}
      : { DeviceConfiguration: { telemetryTopic: 'pifleet/+/telemetry' } }),
  });
}

const ROLE = 'arn:aws:iam::123456789012:role/pifleet-provisioning';
const lambdaArn = (name: string) => `arn:aws:lambda:${core.info.region}:${core.info.accountId}:function:${name}`;

interface Claim {
  readonly certPem: string;
  readonly keyPem: string;
  readonly certificateId: string;
}
let setUp: Promise<Claim> | undefined;

/** The account as `pifleet claims create` leaves it: policies, group, templates and one claim certificate. */
function setUpAccount(): Promise<Claim> {
  setUp ??= (async () => {
    const { region, accountId } = core.info;
    await core.iot.send(
      new CreatePolicyCommand({
        policyName: RECOMMENDED_POLICY_NAME,
        policyDocument: JSON.stringify(recommendedDevicePolicy(region, accountId)),
      }),
    );
    await core.iot.send(new CreateThingGroupCommand({ thingGroupName: GROUP }));
    const templates: Array<[string, { hook?: string; enabled?: boolean }]> = [
      ['pf-open', {}],
      ['pf-hooked', { hook: 'allow-and-override' }],
      ['pf-denied', { hook: 'deny' }],
      ['pf-throws', { hook: 'throws' }],
      ['pf-unknown-hook', { hook: 'no-such-function' }],
      ['pf-disabled', { enabled: false }],
      ['pf-pifleet-hook', { hook: 'pifleet-provisioning-hook' }],
    ];
    for (const [templateName, o] of templates) {
      await core.iot.send(
        new CreateProvisioningTemplateCommand({
          templateName,
          templateBody: templateBody(),
          provisioningRoleArn: ROLE,
          enabled: o.enabled ?? true,
          ...(o.hook === undefined ? {} : { preProvisioningHook: { targetArn: lambdaArn(o.hook) } }),
        }),
      );
    }
    const topics = [
      '$aws/certificates/create/*',
      '$aws/certificates/create-from-csr/*',
      // Every template here and one that does not exist (pf-missing); one grant, as the document's 2,048 characters allow.
      '$aws/provisioning-templates/pf-*/provision/*',
    ];
    const claimPolicy: IotPolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['iot:Connect'], Resource: '*' },
        { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: topics.map((t) => arn('topic', t)) },
        { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: topics.map((t) => arn('topicfilter', t)) },
      ],
    };
    await core.iot.send(new CreatePolicyCommand({ policyName: 'claim', policyDocument: JSON.stringify(claimPolicy) }));
    const cert = await core.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await core.iot.send(new AttachPolicyCommand({ policyName: 'claim', target: cert.certificateArn }));
    return {
      certPem: cert.certificatePem as string,
      keyPem: cert.keyPair?.PrivateKey as string,
      certificateId: cert.certificateId as string,
    };
  })();
  return setUp;
}

let seq = 0;
const nextSerial = () => `${Date.now().toString(16)}${(++seq).toString(16).padStart(4, '0')}`;

async function claimDevice(protocol: MqttProtocol): Promise<DeviceClient> {
  const { certPem, keyPem } = await setUpAccount();
  const device = await connectDevice(core, { thingName: `claim-${++seq}`, certPem, keyPem }, protocol);
  opened.push(device);
  return device;
}

function identityOf(device: DeviceClient): iotidentity.IotIdentityClientv2 {
  const options = { maxRequestResponseSubscriptions: 4, maxStreamingSubscriptions: 2, operationTimeoutInSeconds: 10 };
  const { native } = device;
  const client =
    native.protocol === '5'
      ? iotidentity.IotIdentityClientv2.newFromMqtt5(native.client, options)
      : iotidentity.IotIdentityClientv2.newFromMqtt311(native.connection, options);
  opened.push({ close: async () => client.close() });
  return client;
}

/** A key made here (on the device) and its CSR; the private key is exported only to connect with it. */
async function deviceKeyAndCsr(): Promise<{ csrPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'CN=pifleet-device', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { csrPem: csr.toString('pem'), keyPem };
}

const statusOf = async (certificateId: string) =>
  (await core.iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status;

describe.each(MQTT_PROTOCOLS)('RegisterThing with the device SDK identity client over MQTT %s', (protocol) => {
  it('provisions a device from a CSR: thing, group, policy, ACTIVE certificate, and it publishes telemetry as itself', async () => {
    const identity = identityOf(await claimDevice(protocol));
    const { csrPem, keyPem } = await deviceKeyAndCsr();
    const cert = await within(
      identity.createCertificateFromCsr({ certificateSigningRequest: csrPem }),
      15_000,
      'createCertificateFromCsr',
    );
    const serial = nextSerial();
    const registered = await within(
      identity.registerThing({
        templateName: 'pf-open',
        certificateOwnershipToken: cert.certificateOwnershipToken as string,
        parameters: { SerialNumber: serial },
      }),
      15_000,
      'registerThing',
    );
    const thingName = `pi-${serial}`;
    expect(registered).toEqual({ thingName, deviceConfiguration: { telemetryTopic: 'pifleet/+/telemetry' } });

    const certificateId = cert.certificateId as string;
    const certificateArn = arn('cert', certificateId);
    expect(await statusOf(certificateId)).toBe('ACTIVE');
    const thing = await core.iot.send(new DescribeThingCommand({ thingName }));
    expect(thing.attributes).toEqual({ serial, model: 'unknown' });
    const groups = await core.iot.send(new ListThingGroupsForThingCommand({ thingName }));
    expect(groups.thingGroups?.map((g) => g.groupName)).toEqual([GROUP]);
    const principals = await core.iot.send(new ListThingPrincipalsCommand({ thingName }));
    expect(principals.principals).toEqual([certificateArn]);
    const policies = await core.iot.send(new ListAttachedPoliciesCommand({ target: certificateArn }));
    expect(policies.policies?.map((p) => p.policyName)).toEqual([RECOMMENDED_POLICY_NAME]);

    // The device connects as itself with the key that never left it, and its telemetry is stored.
    const device = await connectDevice(core, { thingName, certPem: cert.certificatePem as string, keyPem }, protocol);
    opened.push(device);
    const batch = {
      v: 1,
      thingName,
      bootId: 'b0b0b0b0-0000-4000-8000-000000000001',
      seq: 1,
      sealedAt: Date.now(),
      readings: [{ sensor: 'bme280', ts: Date.now(), metrics: { temperature: 21.5 } }],
    };
    const outcome = await device.publish(appTopics.telemetry(thingName), JSON.stringify(batch), 1);
    if (protocol === '5') expect(outcome).toBe(MQTT5_REASON.SUCCESS);
    await expect
      .poll(() => core.core.services.telemetry.countReadings(thingName), { timeout: 10_000, interval: 50 })
      .toBe(1);
  });

  it('a token is good once: the same token again is rejected, and nothing more is made', async () => {
    const identity = identityOf(await claimDevice(protocol));
    const cert = await within(identity.createKeysAndCertificate({}), 15_000, 'createKeysAndCertificate');
    const token = cert.certificateOwnershipToken as string;
    const serial = nextSerial();
    await within(
      identity.registerThing({
        templateName: 'pf-open',
        certificateOwnershipToken: token,
        parameters: { SerialNumber: serial },
      }),
      15_000,
      'registerThing',
    );
    const again = await settle(
      identity.registerThing({
        templateName: 'pf-open',
        certificateOwnershipToken: token,
        parameters: { SerialNumber: nextSerial() },
      }),
    );
    expect(again).toEqual({
      ok: false,
      body: {
        statusCode: 400,
        errorCode: 'InvalidCertificateOwnershipToken',
        errorMessage: expect.stringMatching(/already been used/),
      },
    });
  });

  it("a hook's allow with overrides: it sees AWS's event, and its overrides replace the device's parameters", async () => {
    const device = await claimDevice(protocol);
    const identity = identityOf(device);
    const { csrPem } = await deviceKeyAndCsr();
    const cert = await within(identity.createCertificateFromCsr({ certificateSigningRequest: csrPem }), 15_000, 'csr');
    const serial = nextSerial();
    const registered = await within(
      identity.registerThing({
        templateName: 'pf-hooked',
        certificateOwnershipToken: cert.certificateOwnershipToken as string,
        parameters: { SerialNumber: serial, Model: 'device-says' },
      }),
      15_000,
      'registerThing',
    );
    expect(registered.thingName).toBe(`pi-${serial}`);
    const event = hookEvents.find((e) => e.certificateId === cert.certificateId);
    const claim = await setUpAccount();
    expect(event).toEqual({
      claimCertificateId: claim.certificateId,
      certificateId: cert.certificateId,
      certificatePem: cert.certificatePem,
      templateArn: arn('provisioningtemplate', 'pf-hooked'),
      clientId: device.clientId,
      parameters: { SerialNumber: serial, Model: 'device-says' },
    });
    const thing = await core.iot.send(new DescribeThingCommand({ thingName: `pi-${serial}` }));
    expect(thing.attributes?.model).toBe('checked-by-hook');
  });

  it.each([
    ['denies', 'pf-denied'],
    ['throws', 'pf-throws'],
    ['names a function the core does not have', 'pf-unknown-hook'],
  ])(
    'a hook that %s: 403 AccessDenied, the certificate stays pending and no thing is made',
    async (_label, templateName) => {
      const identity = identityOf(await claimDevice(protocol));
      const cert = await within(identity.createKeysAndCertificate({}), 15_000, 'createKeysAndCertificate');
      const serial = nextSerial();
      const result = await settle(
        identity.registerThing({
          templateName,
          certificateOwnershipToken: cert.certificateOwnershipToken as string,
          parameters: { SerialNumber: serial },
        }),
      );
      expect(result).toEqual({
        ok: false,
        body: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: expect.any(String) },
      });
      expect(await statusOf(cert.certificateId as string)).toBe('PENDING_ACTIVATION');
      await expect(core.iot.send(new DescribeThingCommand({ thingName: `pi-${serial}` }))).rejects.toMatchObject({
        name: 'ResourceNotFoundException',
      });
    },
  );
});

/** mqtt.js with the claim certificate, for what the SDK never sends. */
async function rawClaim(protocol: MqttProtocol) {
  const { certPem, keyPem } = await setUpAccount();
  const client = await connectAsync({
    ...thingMqttOptions(core.info, { thingName: `raw-claim-${++seq}`, certPem, keyPem }),
    protocolVersion: protocol === '5' ? 5 : 4,
  });
  opened.push({ close: async () => void (await client.endAsync(true)) });
  const received: Array<{ topic: string; body: Record<string, unknown> }> = [];
  let wake: (() => void) | undefined;
  client.on('message', (topic, payload) => {
    received.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> });
    wake?.();
  });
  async function request(topic: string, payload: string | Buffer) {
    const before = received.length;
    const next = new Promise<void>((resolve) => {
      wake = resolve;
    });
    await client.publishAsync(topic, payload, { qos: 1 });
    if (received.length === before) await within(next, 10_000, `answer on ${topic}`);
    return received[before] as { topic: string; body: Record<string, unknown> };
  }
  return { client, request };
}

async function tokenOver(raw: Awaited<ReturnType<typeof rawClaim>>): Promise<{ token: string; certificateId: string }> {
  await raw.client.subscribeAsync('$aws/certificates/create/json/+', { qos: 1 });
  const answer = await raw.request('$aws/certificates/create/json', '{}');
  return { token: answer.body.certificateOwnershipToken as string, certificateId: answer.body.certificateId as string };
}

describe('RegisterThing refusals, over mqtt.js (MQTT 5)', () => {
  const template = provisionTopics('pf-open');

  it.each([
    ['not JSON', 'hello', 'InvalidPayload'],
    ['10,000-deep JSON', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`, 'InvalidPayload'],
    ['no token', '{"parameters":{}}', 'InvalidPayload'],
    ['a token under __proto__', '{"__proto__":{"certificateOwnershipToken":"x"}}', 'InvalidPayload'],
    [
      'a parameter that is not a string',
      '{"certificateOwnershipToken":"x","parameters":{"SerialNumber":1}}',
      'InvalidPayload',
    ],
    ['parameters that are a list', '{"certificateOwnershipToken":"x","parameters":["a"]}', 'InvalidPayload'],
    [
      'a token never issued',
      '{"certificateOwnershipToken":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}',
      'InvalidCertificateOwnershipToken',
    ],
    ['an empty payload', '', 'InvalidPayload'],
  ])('%s: 400 %s, and the core keeps answering', async (_label, payload, errorCode) => {
    const raw = await rawClaim('5');
    await raw.client.subscribeAsync(`${template.request}/+`, { qos: 1 });
    const answer = await raw.request(template.request, payload);
    expect(answer).toEqual({
      topic: template.rejected,
      body: { statusCode: 400, errorCode, errorMessage: expect.any(String) },
    });
  });

  it('a template that does not exist is 404, a disabled one 400, and neither uses up the token', async () => {
    const raw = await rawClaim('5');
    const { token, certificateId } = await tokenOver(raw);
    const body = JSON.stringify({ certificateOwnershipToken: token, parameters: { SerialNumber: nextSerial() } });
    for (const [name, statusCode, errorCode] of [
      ['pf-missing', 404, 'ResourceNotFound'],
      ['pf-disabled', 400, 'InvalidRequest'],
    ] as const) {
      const topics = provisionTopics(name);
      await raw.client.subscribeAsync(`${topics.request}/+`, { qos: 1 });
      expect(await raw.request(topics.request, body)).toEqual({
        topic: topics.rejected,
        body: { statusCode, errorCode, errorMessage: expect.stringContaining(name) },
      });
    }
    await raw.client.subscribeAsync(`${template.request}/+`, { qos: 1 });
    const accepted = await raw.request(template.request, body);
    expect(accepted.topic).toBe(template.accepted);
    expect(await statusOf(certificateId)).toBe('ACTIVE');
  });

  it('a parameter the template needs and the device left out: 400 ResourceRegistrationFailure, nothing made', async () => {
    const raw = await rawClaim('5');
    const { token, certificateId } = await tokenOver(raw);
    await raw.client.subscribeAsync(`${template.request}/+`, { qos: 1 });
    const answer = await raw.request(template.request, JSON.stringify({ certificateOwnershipToken: token }));
    expect(answer).toEqual({
      topic: template.rejected,
      body: {
        statusCode: 400,
        errorCode: 'ResourceRegistrationFailure',
        errorMessage: expect.stringMatching(/SerialNumber/),
      },
    });
    expect(await statusOf(certificateId)).toBe('PENDING_ACTIVATION');
  });

  it('a second device with the same serial joins the existing thing (MERGE), both certificates attached', async () => {
    const serial = nextSerial();
    const thingName = `pi-${serial}`;
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const raw = await rawClaim('5');
      const { token, certificateId } = await tokenOver(raw);
      await raw.client.subscribeAsync(`${template.request}/+`, { qos: 1 });
      const answer = await raw.request(
        template.request,
        JSON.stringify({ certificateOwnershipToken: token, parameters: { SerialNumber: serial, Model: `m${i}` } }),
      );
      expect(answer).toEqual({
        topic: template.accepted,
        body: { thingName, deviceConfiguration: expect.any(Object) },
      });
      ids.push(certificateId);
    }
    const thing = await core.iot.send(new DescribeThingCommand({ thingName }));
    expect(thing.attributes).toEqual({ serial, model: 'm1' });
    const principals = await core.iot.send(new ListThingPrincipalsCommand({ thingName }));
    expect([...(principals.principals ?? [])].sort()).toEqual(ids.map((id) => arn('cert', id)).sort());
  });

  it("pifleet's own hook is built in: a serial is lower-cased into the thing's name, a malformed one denied", async () => {
    const topics = provisionTopics('pf-pifleet-hook');
    const serial = `ABC${nextSerial()}`;
    for (const [sent, outcome] of [
      [
        serial,
        {
          topic: topics.accepted,
          body: { thingName: `pi-${serial.toLowerCase()}`, deviceConfiguration: expect.any(Object) },
        },
      ],
      [
        'not a serial',
        {
          topic: topics.rejected,
          body: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: expect.any(String) },
        },
      ],
    ] as const) {
      const raw = await rawClaim('5');
      const { token } = await tokenOver(raw);
      await raw.client.subscribeAsync(`${topics.request}/+`, { qos: 1 });
      const answer = await raw.request(
        topics.request,
        JSON.stringify({ certificateOwnershipToken: token, parameters: { SerialNumber: sent } }),
      );
      expect(answer).toEqual(outcome);
    }
  });

  it('UpdateProvisioningTemplate takes effect at the next request (enabled → disabled)', async () => {
    const raw = await rawClaim('5');
    const { token } = await tokenOver(raw);
    await core.iot.send(new UpdateProvisioningTemplateCommand({ templateName: 'pf-hooked', enabled: false }));
    try {
      const topics = provisionTopics('pf-hooked');
      await raw.client.subscribeAsync(`${topics.request}/+`, { qos: 1 });
      const answer = await raw.request(
        topics.request,
        JSON.stringify({ certificateOwnershipToken: token, parameters: { SerialNumber: nextSerial() } }),
      );
      expect(answer.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidRequest' });
    } finally {
      await core.iot.send(new UpdateProvisioningTemplateCommand({ templateName: 'pf-hooked', enabled: true }));
    }
  });
});
