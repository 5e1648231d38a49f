import { MQTT5_REASON } from '@pifleet/protocol';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, createBroker } from '../../src/broker/index.js';
import type { AttachedPolicy, DeviceIdentity, IdentityDirectory } from '../../src/index.js';
import {
  ACCOUNT,
  arn,
  createTestPki,
  type IssuedCertificate,
  policy,
  type TestPki,
  within,
} from '../broker/fixtures.js';

/**
 * What the broker puts into a connection's policy context, seen through real mqtt.js MQTT 5
 * connections over mutual TLS: the request time from the broker's clock (asked on every PUBLISH,
 * never cached), the TLS server name as iot:DomainName, the certificate's name fields and
 * validity, and the registry's thing facts.
 */

class Directory implements IdentityDirectory {
  readonly #identities = new Map<string, DeviceIdentity>();
  identityOf(certificateId: string) {
    return this.#identities.get(certificateId);
  }
  onIdentityChange() {
    return () => {};
  }
  put(cert: IssuedCertificate, thingName: string, policies: AttachedPolicy[], attributes: Record<string, string> = {}) {
    this.#identities.set(cert.certificateId, {
      certificateId: cert.certificateId,
      certificateArn: arn('cert', cert.certificateId),
      status: 'ACTIVE',
      thingNames: [thingName],
      policies,
      things: new Map([[thingName, { attributes, thingTypeName: 'sensor', groupPolicies: [] }]]),
    });
  }
}

const START = Date.parse('2026-03-01T11:59:58Z');
let clock = START;
let pki: TestPki;
let broker: Broker;
let port: number;
const directory = new Directory();
const clients: MqttClient[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  broker = createBroker({
    identities: directory,
    tls: pki.serverTls,
    host: '127.0.0.1',
    port: 0,
    account: ACCOUNT,
    now: () => clock,
  });
  ({ port } = await broker.start());
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync()));
  await broker.stop();
});

async function connect(cert: IssuedCertificate, clientId: string, extra: IClientOptions = {}): Promise<MqttClient> {
  const client = await within(
    connectAsync({
      protocol: 'mqtts',
      host: '127.0.0.1',
      port,
      ca: pki.caCertPem,
      cert: cert.certPem,
      key: cert.keyPem,
      clientId,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...extra,
    }),
    10_000,
    `connect ${clientId}`,
  );
  clients.push(client);
  return client;
}

function puback(client: MqttClient, topic: string): Promise<number> {
  return within(
    new Promise<number>((resolve) => {
      client.publish(topic, 'x', { qos: 1 }, (err) => resolve(err ? ((err as { code?: number }).code ?? -1) : 0));
    }),
    5_000,
    `PUBACK for ${topic}`,
  );
}

const connectAny = { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' } as const;

describe('the broker policy context', () => {
  it('asks the time of every PUBLISH under a time condition: the same topic flips when the clock passes the date', async () => {
    const cert = await pki.issue('window-1');
    directory.put(cert, 'window-1', [
      policy(
        'window',
        connectAny,
        {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: arn('topic', 'window/*'),
          Condition: { DateLessThan: { 'aws:CurrentTime': '2026-03-01T12:00:00Z' } },
        },
        { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', 'always/*') },
      ),
    ]);
    const client = await connect(cert, 'window-1');
    clock = START;
    expect(await puback(client, 'window/a')).toBe(0);
    expect(await puback(client, 'window/a')).toBe(0);
    clock = Date.parse('2026-03-01T12:00:00Z');
    expect(await puback(client, 'window/a')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(client, 'always/a')).toBe(0);
    clock = START;
    expect(await puback(client, 'window/a')).toBe(0);
  });

  it('gives the TLS server name as iot:DomainName, and none when the client sent none', async () => {
    const cert = await pki.issue('domain-1');
    const byDomain = policy('by-domain', connectAny, {
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: arn('topic', 'domain/${iot:DomainName}'),
    });
    const noDomain = policy('no-domain', {
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: arn('topic', 'nodomain'),
      Condition: { Null: { 'iot:DomainName': 'true' } },
    });
    directory.put(cert, 'domain-1', [byDomain, noDomain]);
    const named = await connect(cert, 'domain-1', { servername: 'localhost' });
    expect(await puback(named, 'domain/localhost')).toBe(0);
    expect(await puback(named, 'domain/other')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(named, 'nodomain')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    await named.endAsync();
    // Connecting by address sends no SNI (RFC 6066 allows host names only).
    const unnamed = await connect(cert, 'domain-1');
    expect(await puback(unnamed, 'nodomain')).toBe(0);
    expect(await puback(unnamed, 'domain/')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
  });

  it("reads the certificate's name fields (IoT Core's list) and validity, and the thing's facts", async () => {
    // @peculiar/x509 writes SN as surname, G as given name and I as initials.
    const cert = await pki.issue('fields-1, SN=Smith, G=Ann, I=AS, O=Example');
    directory.put(
      cert,
      'fields-1',
      [
        policy(
          'fields',
          connectAny,
          {
            Effect: 'Allow',
            Action: 'iot:Publish',
            Resource: arn(
              'topic',
              'cert/${iot:Certificate.Subject.Surname}/${iot:Certificate.Subject.GivenName}/${iot:Certificate.Subject.Initials}/${iot:Certificate.Subject.Organization}',
            ),
          },
          {
            Effect: 'Allow',
            Action: 'iot:Publish',
            Resource: arn('topic', 'valid'),
            Condition: {
              DateLessThan: { 'iot:Certificate.Validity.NotBefore': '2100-01-01' },
              DateGreaterThan: { 'iot:Certificate.Validity.NotAfter': '2020-01-01' },
            },
          },
          {
            Effect: 'Allow',
            Action: 'iot:Publish',
            Resource: arn(
              'topic',
              'site/${iot:Connection.Thing.Attributes[site]}/${iot:Connection.Thing.ThingTypeName}',
            ),
          },
        ),
      ],
      { site: 'plant-a' },
    );
    const client = await connect(cert, 'fields-1');
    expect(await puback(client, 'cert/Smith/Ann/AS/Example')).toBe(0);
    expect(await puback(client, 'cert/Smith/Ann/AS/Other')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await puback(client, 'valid')).toBe(0);
    expect(await puback(client, 'site/plant-a/sensor')).toBe(0);
    expect(await puback(client, 'site/plant-b/sensor')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
  });
});
