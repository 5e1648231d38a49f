import { webcrypto, X509Certificate } from 'node:crypto';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  DescribeCertificateCommand,
} from '@aws-sdk/client-iot';
import {
  certificateTopics,
  type IotPolicyDocument,
  type JsonObject,
  MQTT_PROTOCOLS,
  MQTT5_REASON,
  type MqttProtocol,
  provisionTopics,
} from '@pifleet/protocol';
import { iotidentity } from 'aws-iot-device-sdk-v2';
import { connectAsync, type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import * as x509 from '../../src/ca/x509.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import {
  ConnectRefused,
  type Core,
  connectDevice,
  coreForFile,
  type DeviceClient,
  deniedSubscribeCode,
  type Received,
  settle,
  within,
} from '../conformance/harness.js';

/**
 * Fleet provisioning's certificate requests against the in-process core, as devices make them: the
 * device SDK's `iotidentity.IotIdentityClientv2` over MQTT 3.1.1 and 5 (aws-crt), and mqtt.js over
 * both for what the SDK never sends. The devices connect with a claim certificate whose policy is
 * AWS's claim certificate policy ("Provisioning devices that don't have device certificates using
 * fleet provisioning", Provisioning by claim), so they may use these topics and nothing else.
 */

let core: Core;
const { opened, arn } = coreForFile('fleet-provisioning', (started) => {
  core = started;
});

const TEMPLATE = 'pifleet-claim';

/** AWS's claim certificate policy, for one template (the create-from-csr topics named as well). */
function claimPolicy(): IotPolicyDocument {
  const topics = [
    '$aws/certificates/create/*',
    '$aws/certificates/create-from-csr/*',
    `$aws/provisioning-templates/${TEMPLATE}/provision/*`,
  ];
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['iot:Connect'], Resource: '*' },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: topics.map((t) => arn('topic', t)) },
      { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: topics.map((t) => arn('topicfilter', t)) },
    ],
  };
}

interface Claim {
  readonly certPem: string;
  readonly keyPem: string;
}

let claim: Claim | undefined;

/** The one claim certificate every device of the fleet holds (created once, active, with the claim policy). */
async function claimCertificate(): Promise<Claim> {
  if (claim) return claim;
  const cert = await core.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  await core.iot.send(
    new CreatePolicyCommand({ policyName: 'pifleet-claim', policyDocument: JSON.stringify(claimPolicy()) }),
  );
  await core.iot.send(new AttachPolicyCommand({ policyName: 'pifleet-claim', target: cert.certificateArn }));
  claim = { certPem: cert.certificatePem as string, keyPem: cert.keyPair?.PrivateKey as string };
  return claim;
}

let seq = 0;
const clientIdOf = (label: string) => `claim-${label}-${++seq}`;

/** A device connected with the claim certificate (client id: any, as with AWS). */
async function claimDevice(protocol: MqttProtocol, label: string): Promise<DeviceClient> {
  const { certPem, keyPem } = await claimCertificate();
  const device = await connectDevice(core, { thingName: clientIdOf(label), certPem, keyPem }, protocol);
  opened.push(device);
  return device;
}

const IDENTITY_OPTIONS = {
  maxRequestResponseSubscriptions: 4,
  maxStreamingSubscriptions: 2,
  operationTimeoutInSeconds: 10,
};

function identityClientOf(device: DeviceClient): iotidentity.IotIdentityClientv2 {
  const { native } = device;
  const client =
    native.protocol === '5'
      ? iotidentity.IotIdentityClientv2.newFromMqtt5(native.client, IDENTITY_OPTIONS)
      : iotidentity.IotIdentityClientv2.newFromMqtt311(native.connection, IDENTITY_OPTIONS);
  opened.push({ close: async () => client.close() });
  return client;
}

async function ecCsr(): Promise<{ pem: string; keys: webcrypto.CryptoKeyPair }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'CN=pi-0001', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    webcrypto,
  );
  return { pem: csr.toString('pem'), keys };
}

async function statusOf(certificateId: string): Promise<string | undefined> {
  const out = await core.iot.send(new DescribeCertificateCommand({ certificateId }));
  return out.certificateDescription?.status;
}

describe.each(MQTT_PROTOCOLS)('the device SDK identity client over MQTT %s', (protocol) => {
  it('CreateKeysAndCertificate: a certificate PENDING_ACTIVATION, its private key and an ownership token', async () => {
    const identity = identityClientOf(await claimDevice(protocol, 'keys'));
    const out = await within(identity.createKeysAndCertificate({}), 15_000, 'createKeysAndCertificate');
    expect(out.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(out.certificateOwnershipToken).toEqual(expect.any(String));
    const cert = new X509Certificate(out.certificatePem as string);
    expect(cert.verify(new X509Certificate(core.caPem).publicKey)).toBe(true);
    expect(out.privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(await statusOf(out.certificateId as string)).toBe('PENDING_ACTIVATION');

    // Not ACTIVE: the new certificate cannot connect until RegisterThing activates it.
    const refused = await connectDevice(
      core,
      { thingName: clientIdOf('pending'), certPem: out.certificatePem as string, keyPem: out.privateKey as string },
      protocol,
    ).then(
      (device) => {
        opened.push(device);
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(ConnectRefused);
  });

  it('CreateCertificateFromCsr: the certificate for the device key, which never left the device', async () => {
    const identity = identityClientOf(await claimDevice(protocol, 'csr'));
    const { pem, keys } = await ecCsr();
    const out = await within(
      identity.createCertificateFromCsr({ certificateSigningRequest: pem }),
      15_000,
      'createCertificateFromCsr',
    );
    expect(Object.keys(out).sort()).toEqual(['certificateId', 'certificateOwnershipToken', 'certificatePem']);
    const cert = new X509Certificate(out.certificatePem as string);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    expect(cert.publicKey.export({ format: 'der', type: 'spki' }).equals(spki)).toBe(true);
    expect(await statusOf(out.certificateId as string)).toBe('PENDING_ACTIVATION');
  });

  it('a bad CSR is rejected with {statusCode, errorCode, errorMessage}, as the SDK models it', async () => {
    const identity = identityClientOf(await claimDevice(protocol, 'bad-csr'));
    const result = await settle(identity.createCertificateFromCsr({ certificateSigningRequest: 'not a csr' }));
    expect(result).toEqual({
      ok: false,
      body: { statusCode: 400, errorCode: 'InvalidCSR', errorMessage: expect.stringMatching(/PKCS#10/) },
    });
  });

  it('the claim certificate can do nothing beyond its topics', async () => {
    const device = await claimDevice(protocol, 'elsewhere');
    expect(await device.subscribe('pifleet/+/telemetry', () => {})).toBe(deniedSubscribeCode(protocol));
    expect(await device.subscribe('$aws/things/pi-0001/shadow/update/accepted', () => {})).toBe(
      deniedSubscribeCode(protocol),
    );
    if (protocol === '5') {
      expect(await device.publish('pifleet/pi-0001/telemetry', '{}', 1)).toBe(MQTT5_REASON.NOT_AUTHORIZED);
      // Another template's RegisterThing topic is not this claim's.
      expect(await device.publish(provisionTopics('other-template').request, '{}', 1)).toBe(
        MQTT5_REASON.NOT_AUTHORIZED,
      );
    } else {
      // MQTT 3.1.1 has no negative PUBACK: IoT Core closes the connection.
      void device.publish('pifleet/pi-0001/telemetry', '{}', 1).catch(() => undefined);
      await device.dropped();
    }
  });
});

/** An mqtt.js client with the claim certificate, recording what it receives. */
async function rawClaimClient(protocol: MqttProtocol, label: string) {
  const { certPem, keyPem } = await claimCertificate();
  const clientId = clientIdOf(label);
  const client: MqttClient = await connectAsync({
    ...thingMqttOptions(core.info, { thingName: clientId, certPem, keyPem }),
    protocolVersion: protocol === '5' ? 5 : 4,
  });
  opened.push({ close: async () => void (await client.endAsync(true)) });
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  client.on('message', (topic, payload) => {
    received.push({ topic, payload: JSON.parse(payload.toString()) as JsonObject });
    for (const w of waiters.splice(0)) w();
  });
  return {
    client,
    received,
    async subscribeAnswers() {
      await client.subscribeAsync(
        [
          certificateTopics.create.accepted,
          certificateTopics.create.rejected,
          certificateTopics.createFromCsr.accepted,
          certificateTopics.createFromCsr.rejected,
        ],
        { qos: 1 },
      );
    },
    /** Publishes and waits for the next answer. */
    async request(topic: string, payload: string | Buffer): Promise<Received> {
      const before = received.length;
      const next = new Promise<void>((resolve) => waiters.push(resolve));
      await client.publishAsync(topic, payload, { qos: 1 });
      if (received.length === before) await within(next, 10_000, `answer to ${topic}`);
      return received[before] as Received;
    },
  };
}

describe.each(MQTT_PROTOCOLS)('mqtt.js over MQTT %s', (protocol) => {
  it.each([
    ['not JSON', certificateTopics.create.request, 'hello', 'InvalidPayload'],
    [
      '10,000-deep JSON',
      certificateTopics.create.request,
      `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
      'InvalidPayload',
    ],
    [
      'a CSR under __proto__',
      certificateTopics.createFromCsr.request,
      '{"__proto__":{"certificateSigningRequest":"x"}}',
      'InvalidPayload',
    ],
    [
      'a CSR that is not one',
      certificateTopics.createFromCsr.request,
      '{"certificateSigningRequest":"x"}',
      'InvalidCSR',
    ],
  ])(
    '%s is rejected on the rejected topic, and the core keeps answering',
    async (_label, topic, payload, errorCode) => {
      const device = await rawClaimClient(protocol, 'hostile');
      await device.subscribeAnswers();
      const rejected = await device.request(topic, payload);
      expect(rejected.topic).toBe(`${topic}/rejected`);
      expect(rejected.payload).toEqual({ statusCode: 400, errorCode, errorMessage: expect.any(String) });
      const next = await device.request(certificateTopics.create.request, '{}');
      expect(next.topic).toBe(certificateTopics.create.accepted);
    },
  );

  it('answers only the connection that asked: another claim holder subscribed to the same topics sees nothing of it', async () => {
    const asker = await rawClaimClient(protocol, 'asker');
    const bystander = await rawClaimClient(protocol, 'bystander');
    await asker.subscribeAnswers();
    await bystander.subscribeAnswers();
    const answer = await asker.request(certificateTopics.create.request, '{}');
    expect(answer.topic).toBe(certificateTopics.create.accepted);
    // The bystander's own request is answered after the asker's answer was published: had the
    // bystander been sent the asker's answer, it would have arrived first.
    const own = await bystander.request(certificateTopics.create.request, '');
    expect(bystander.received).toHaveLength(1);
    expect((own.payload as JsonObject).certificateId).not.toBe((answer.payload as JsonObject).certificateId);
    expect(asker.received).toHaveLength(1);
  });
});
