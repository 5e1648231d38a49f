import { PassThrough } from 'node:stream';
import { MQTT5_REASON } from '@pifleet/protocol';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { presignIotWebSocketUrl } from '../../src/adapters/iot-websocket.js';
import { type Broker, createBroker } from '../../src/broker/index.js';
import { createWebSocketListener, type WebSocketListener } from '../../src/broker/websocket-listener.js';
import { logSink } from '../log-sink.js';
import { ACCOUNT, arn, Inbox, policy, startTlsBroker, type TestPki, within } from './fixtures.js';

/**
 * The WebSocket listener on a bare broker, with a policy of the test's own: every CONNECT,
 * SUBSCRIBE, PUBLISH and delivery of a SigV4 connection is decided by the caller's IAM policy
 * through the broker's evaluator (conditions and explicit denies included), quotas apply as to a
 * device, a session token appended after signing is accepted for temporary credentials, and the log
 * never holds a signature, a token or a secret.
 */

const KEY = 'AKIAOPERATORTEST0001';
const SECRET = 'operatorSecret/0123456789abcdefABCDEFGHIJ';
const TEMP_KEY = 'ASIAOPERATORTEST0002';
const TEMP_SECRET = 'temporarySecret/0123456789abcdefABCDEFGH';
const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN/+=';

/** Connect as `ops-*` from a loopback address (not `ops-denied`); follow `fleet/#`, receive only telemetry, publish commands. */
const operator = policy(
  'operator',
  {
    Effect: 'Allow',
    Action: 'iot:Connect',
    Resource: arn('client', 'ops-*'),
    Condition: { IpAddress: { 'aws:SourceIp': '127.0.0.0/8' } },
  },
  { Effect: 'Deny', Action: 'iot:Connect', Resource: arn('client', 'ops-denied') },
  { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', 'fleet/#') },
  { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', 'fleet/*/telemetry') },
  { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', 'fleet/*/commands') },
);

let pki: TestPki;
let broker: Broker;
let listener: WebSocketListener;
let url: string;
const sink = logSink();
const inbox = new Inbox();
const clients: MqttClient[] = [];

beforeAll(async () => {
  ({ pki, broker } = await startTlsBroker());
  await broker.bus.subscribe('fleet/#', inbox.push);
  listener = createWebSocketListener({
    broker,
    tls: pki.serverTls,
    host: '127.0.0.1',
    port: 0,
    region: ACCOUNT.region,
    credentials: {
      secretFor: (id) => (id === KEY ? SECRET : id === TEMP_KEY ? TEMP_SECRET : undefined),
      sessionTokenFor: (id) => (id === TEMP_KEY ? TOKEN : undefined),
    },
    policies: [operator],
    logger: sink.logger,
  });
  const { port } = await listener.start();
  url = `wss://localhost:${port}/mqtt`;
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
});

afterAll(async () => {
  await listener?.stop();
  await broker?.stop();
});

function presign(credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) {
  return presignIotWebSocketUrl({ url, region: ACCOUNT.region, credentials });
}

async function connect(
  clientId: string,
  options: IClientOptions & { credentials?: Parameters<typeof presign>[0] } = {},
): Promise<MqttClient> {
  const { credentials, ...rest } = options;
  const signed = await presign(credentials ?? { accessKeyId: KEY, secretAccessKey: SECRET });
  const client = await within(
    // allowRetries false: a refused upgrade only closes the stream, and that must reject.
    mqtt.connectAsync(
      url,
      {
        clientId,
        protocolVersion: 5,
        ca: pki.caCertPem,
        reconnectPeriod: 0,
        connectTimeout: 5_000,
        transformWsUrl: () => signed,
        ...rest,
      },
      false,
    ),
    10_000,
    `connect ${clientId}`,
  );
  clients.push(client);
  return client;
}

describe('the WebSocket listener with a policy of its own', () => {
  it('checks iot:Receive for every delivery: a granted fleet/# brings telemetry, never alerts', async () => {
    const client = await connect('ops-receive');
    expect((await client.subscribeAsync('fleet/#', { qos: 1 })).map((g) => g.qos)).toEqual([1]);
    const topics: string[] = [];
    client.on('message', (topic) => topics.push(topic));
    const telemetry = within(
      new Promise<void>((resolve) => client.on('message', (t) => t === 'fleet/b/telemetry' && resolve())),
      5_000,
      'telemetry',
    );
    await broker.bus.publish('fleet/a/alerts', '{}', { qos: 1 });
    await broker.bus.publish('fleet/b/telemetry', '{}', { qos: 1 });
    await telemetry;
    expect(topics).toEqual(['fleet/b/telemetry']);
  });

  it('publishes what iot:Publish allows (on the bus with its client id) and answers the rest 0x87', async () => {
    const client = await connect('ops-publish');
    await client.publishAsync('fleet/a/commands', '{"relay":true}', { qos: 1 });
    const seen = await inbox.next((m) => m.topic === 'fleet/a/commands');
    expect(seen.clientId).toBe('ops-publish');
    await expect(client.publishAsync('fleet/a/telemetry', '{}', { qos: 1 })).rejects.toMatchObject({
      code: MQTT5_REASON.NOT_AUTHORIZED,
    });
  });

  it('applies an explicit Deny over the Allow: CONNACK 0x87', async () => {
    await expect(connect('ops-denied')).rejects.toMatchObject({ code: MQTT5_REASON.NOT_AUTHORIZED });
    await expect(connect('dev-1')).rejects.toMatchObject({ code: MQTT5_REASON.NOT_AUTHORIZED });
  });

  it("applies IoT Core's quotas as to a device: a client id over 128 bytes is 0x85", async () => {
    await expect(connect(`ops-${'x'.repeat(130)}`)).rejects.toMatchObject({
      code: MQTT5_REASON.CLIENT_IDENTIFIER_NOT_VALID,
    });
  });

  it('accepts temporary credentials with their session token appended after signing', async () => {
    const client = await connect('ops-temp', {
      credentials: { accessKeyId: TEMP_KEY, secretAccessKey: TEMP_SECRET, sessionToken: TOKEN },
    });
    expect(client.connected).toBe(true);
    await expect(
      connect('ops-temp-2', { credentials: { accessKeyId: TEMP_KEY, secretAccessKey: TEMP_SECRET } }),
    ).rejects.toThrow("Couldn't connect to server");
  });

  it('logs why an upgrade was refused, never the signature, a token or a secret', async () => {
    const signed = await presign({ accessKeyId: KEY, secretAccessKey: `${SECRET}wrong` });
    await expect(
      mqtt.connectAsync(
        url,
        { clientId: 'ops-log', ca: pki.caCertPem, reconnectPeriod: 0, transformWsUrl: () => signed },
        false,
      ),
    ).rejects.toThrow("Couldn't connect to server");
    await connect('ops-log-ok', {
      credentials: { accessKeyId: TEMP_KEY, secretAccessKey: TEMP_SECRET, sessionToken: TOKEN },
    });
    expect(sink.lines).toContainEqual(
      expect.objectContaining({
        msg: 'websocket upgrade refused: signature',
        errorType: 'InvalidSignatureException',
        remoteAddress: '127.0.0.1',
      }),
    );
    const text = JSON.stringify(sink.lines);
    const signature = new URL(signed).searchParams.get('X-Amz-Signature') ?? '';
    expect(signature).toMatch(/^[0-9a-f]{64}$/);
    for (const secret of [signature, SECRET, TEMP_SECRET, TOKEN, 'X-Amz-Signature']) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('stopping', () => {
  it('ends the open WebSocket connections with the listener, and a stopped broker takes no stream', async () => {
    const pkiBroker = await startTlsBroker();
    const own = createWebSocketListener({
      broker: pkiBroker.broker,
      tls: pkiBroker.pki.serverTls,
      host: '127.0.0.1',
      port: 0,
      region: ACCOUNT.region,
      credentials: { secretFor: (id) => (id === KEY ? SECRET : undefined) },
      policies: [operator],
    });
    const { port } = await own.start();
    const ownUrl = `wss://localhost:${port}/mqtt`;
    const signed = await presignIotWebSocketUrl({
      url: ownUrl,
      region: ACCOUNT.region,
      credentials: { accessKeyId: KEY, secretAccessKey: SECRET },
    });
    const client = await mqtt.connectAsync(ownUrl, {
      clientId: 'ops-stop',
      protocolVersion: 5,
      ca: pkiBroker.pki.caCertPem,
      reconnectPeriod: 0,
      transformWsUrl: () => signed,
    });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await own.stop();
    await within(closed, 5_000, 'the client to see its connection close');
    await own.stop();
    await pkiBroker.broker.stop();
    const stream = new PassThrough();
    pkiBroker.broker.serveSigned(stream, { principalId: KEY, policies: [operator] });
    expect(stream.destroyed).toBe(true);
    await client.endAsync(true);
  });

  it('a broker that never started takes no stream either', () => {
    const idle = createBroker({
      identities: { identityOf: () => undefined, onIdentityChange: () => () => undefined },
      tls: { caCertPem: '', serverCertPem: '', serverKeyPem: '' },
      host: '127.0.0.1',
      port: 0,
      account: ACCOUNT,
    });
    const stream = new PassThrough();
    idle.serveSigned(stream, { principalId: KEY, policies: [operator] });
    expect(stream.destroyed).toBe(true);
  });
});
