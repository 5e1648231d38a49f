import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import {
  appTopicFilters,
  appTopics,
  CONSOLE_CLIENT_ID_PREFIX,
  EXIT,
  MQTT5_REASON,
  presenceTopics,
} from '@pifleet/protocol';
import { auth, mqtt as crt, iot, mqtt5 } from 'aws-iot-device-sdk-v2';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createIotWebSocketConnection, presignIotWebSocketUrl } from '../../src/adapters/iot-websocket.js';
import { createLocalIotCore, readLocalEndpoint } from '../../src/app/local-core.js';
import type { BusMessage } from '../../src/broker/index.js';
import { ConfigError, LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import type { LocalCredentials } from '../../src/http/credentials.js';
import { silentLogger } from '../../src/logger.js';
import { spawnCore } from '../../src/testing/core-process.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { within } from './fixtures.js';

/**
 * MQTT over WebSocket on the composed local IoT Core, as AWS IoT Core serves an operator: the
 * upgrade presigned with SigV4 (`iotdevicegateway`), the connection authorized by the operator's
 * IAM policy (the console operator's, `@pifleet/protocol`). Real clients only: mqtt.js with a URL
 * presigned by @smithy/signature-v4 (the console's `presignIotWebSocketUrl`), the device SDK's
 * WebSocket builders (MQTT 5 and 3.1.1, the CRT signing the handshake itself), and `ws` to read
 * the HTTP answers of refused upgrades. A device connects over the TLS listener as devices do.
 */

const THING = 'pi-ws-1';

let dir: string;
let run: InProcessCore;
let ca: string;
let credentials: LocalCredentials;
let device: MqttClient;
const clients: MqttClient[] = [];

beforeAll(async () => {
  dir = tempDir('websocket');
  run = await startInProcessCore(join(dir, 'core'));
  ca = readFileSync(run.info.caFile, 'utf8');
  credentials = run.core.services.credentials;
  const thing = await provisionThing(run, THING);
  device = await mqtt.connectAsync(thingMqttOptions(run.info, thing));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
});

afterAll(async () => {
  await device?.endAsync(true);
  await run?.stop();
  removeDir(dir);
});

/** The core's `wss://…/mqtt`, presigned by the AWS SDK's signer (the console's helper). */
function presign(
  options: { secretAccessKey?: string; accessKeyId?: string; sessionToken?: string; now?: Date } = {},
): Promise<string> {
  return presignIotWebSocketUrl({
    url: run.info.ws,
    region: run.info.region,
    credentials: {
      accessKeyId: options.accessKeyId ?? credentials.accessKeyId,
      secretAccessKey: options.secretAccessKey ?? credentials.secretAccessKey,
      ...(options.sessionToken === undefined ? {} : { sessionToken: options.sessionToken }),
    },
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

/** An mqtt.js client over the presigned URL, trusting the core's CA; kept for afterEach. */
async function connectWs(clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
  const url = await presign();
  const client = await within(
    mqtt.connectAsync(run.info.ws, {
      clientId,
      protocolVersion: 5,
      ca,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      // mqtt.js rebuilds the URL without its query: hand it the signed one.
      transformWsUrl: () => url,
      ...options,
    }),
    10_000,
    `connect ${clientId}`,
  );
  clients.push(client);
  return client;
}

/** The next message on `topic` the client receives. */
function nextMessage(client: MqttClient, topic: string, ms = 5_000): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve) => {
      const onMessage = (t: string, payload: Buffer) => {
        if (t !== topic) return;
        client.off('message', onMessage);
        resolve(payload);
      };
      client.on('message', onMessage);
    }),
    ms,
    `a message on ${topic}`,
  );
}

/** The next message on the core's bus matching `filter` (presence events, what the device published). */
async function nextOnBus(filter: string): Promise<BusMessage> {
  let unsubscribe: (() => Promise<void>) | undefined;
  const message = new Promise<BusMessage>((resolve) => {
    void run.core.services.broker.bus.subscribe(filter, resolve).then((u) => {
      unsubscribe = u;
    });
  });
  try {
    return await within(message, 5_000, `a bus message on ${filter}`);
  } finally {
    await unsubscribe?.();
  }
}

/** What the listener answers an upgrade: 101 when it switches to a WebSocket, else the HTTP error. */
function upgrade(
  url: string,
  protocols: string[] = ['mqtt'],
): Promise<{ status: number; errorType?: string; body: string } | { error: string }> {
  return within(
    new Promise((resolve) => {
      const ws = new WebSocket(url, protocols, { ca });
      ws.once('open', () => {
        resolve({ status: 101, body: '' });
        ws.terminate();
      });
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.once('end', () => {
          const errorType = res.headers['x-amzn-errortype'];
          resolve({
            status: res.statusCode ?? 0,
            body,
            ...(typeof errorType === 'string' ? { errorType } : {}),
          });
        });
      });
      ws.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    }),
    10_000,
    'upgrade answer',
  );
}

/** The SUBACK's answer per filter (mqtt.js rejects a SUBACK holding a failure, the packet attached). */
function suback(client: MqttClient, filters: string[], qos: 0 | 1): Promise<number[] | undefined> {
  return client.subscribeAsync(filters, { qos }).then(
    (granted) => granted.map((g) => g.qos),
    (err: { packet?: { granted: Array<number | { qos: number }> } }) =>
      err.packet?.granted.map((g) => (typeof g === 'number' ? g : g.qos)),
  );
}

const publishTelemetry = (payload: string) => device.publishAsync(appTopics.telemetry(THING), payload, { qos: 1 });

describe('MQTT over WebSocket with SigV4 on the local IoT Core', () => {
  it('is in the ready line and the endpoint file: wss://127.0.0.1:PORT/mqtt on an ephemeral port', async () => {
    expect(run.info.ws).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    expect(Number(new URL(run.info.ws).port)).toBeGreaterThan(0);
    expect((await readLocalEndpoint(join(dir, 'core')))?.ws).toBe(run.info.ws);
  });

  it('mqtt.js (MQTT 5) with a URL presigned by @smithy/signature-v4 receives the telemetry a device publishes over TLS', async () => {
    const clientId = `${CONSOLE_CLIENT_ID_PREFIX}js5`;
    const presence = nextOnBus(presenceTopics.connected(clientId));
    const client = await connectWs(clientId);
    // Its connection is announced as any is: principal the access key id, address the caller's.
    expect(JSON.parse((await presence).payload.toString())).toMatchObject({
      clientId,
      eventType: 'connected',
      principalIdentifier: credentials.accessKeyId,
      ipAddress: '127.0.0.1',
    });
    const granted = await client.subscribeAsync(['pifleet/+/telemetry', '$aws/events/presence/+/+'], { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    const received = nextMessage(client, appTopics.telemetry(THING));
    await publishTelemetry('{"n":1}');
    expect((await received).toString()).toBe('{"n":1}');
  });

  it('mqtt.js over MQTT 3.1.1 is served too', async () => {
    const client = await connectWs(`${CONSOLE_CLIENT_ID_PREFIX}js3`, { protocolVersion: 4 });
    const granted = await client.subscribeAsync('pifleet/+/telemetry', { qos: 0 });
    expect(granted.map((g) => g.qos)).toEqual([0]);
    const received = nextMessage(client, appTopics.telemetry(THING));
    await publishTelemetry('{"n":3}');
    expect((await received).toString()).toBe('{"n":3}');
  });

  it("refuses SUBSCRIBE outside the operator's policy: 0x87 over MQTT 5, 0x80 over 3.1.1, the allowed filters granted", async () => {
    const v5 = await connectWs(`${CONSOLE_CLIENT_ID_PREFIX}deny5`);
    expect(await suback(v5, ['pifleet/+/commands', '#', 'pifleet/+/alerts'], 1)).toEqual([
      MQTT5_REASON.NOT_AUTHORIZED,
      MQTT5_REASON.NOT_AUTHORIZED,
      1,
    ]);
    const v3 = await connectWs(`${CONSOLE_CLIENT_ID_PREFIX}deny3`, { protocolVersion: 4 });
    expect(await suback(v3, ['pifleet/+/commands', '#', '$aws/things/+/shadow/update/documents'], 0)).toEqual([
      0x80, 0x80, 0,
    ]);
    // Nothing of what was refused reaches it.
    const commands: string[] = [];
    v5.on('message', (topic) => commands.push(topic));
    await run.core.services.broker.bus.publish(appTopics.commands(THING), '{"relay":true}');
    const telemetry = nextMessage(v5, appTopics.telemetry(THING));
    await v5.subscribeAsync('pifleet/+/telemetry', { qos: 0 });
    await publishTelemetry('{"n":4}');
    await telemetry;
    expect(commands).toEqual([appTopics.telemetry(THING)]);
  });

  it('refuses PUBLISH: PUBACK 0x87 over MQTT 5, nothing reaches the bus', async () => {
    const client = await connectWs(`${CONSOLE_CLIENT_ID_PREFIX}pub`);
    const seen: string[] = [];
    const unsubscribe = await run.core.services.broker.bus.subscribe('pifleet/#', (m) => {
      seen.push(m.topic);
    });
    try {
      await expect(client.publishAsync(appTopics.commands(THING), 'x', { qos: 1 })).rejects.toMatchObject({
        code: MQTT5_REASON.NOT_AUTHORIZED,
      });
      expect(client.connected).toBe(true);
      expect(seen).toEqual([]);
    } finally {
      await unsubscribe();
    }
  });

  it.each([
    [5, MQTT5_REASON.NOT_AUTHORIZED],
    [4, 5],
  ] as const)(
    'answers a client id outside iot:Connect (a device id) with CONNACK not authorized (MQTT %i: %i), leaving the device connected',
    async (protocolVersion, code) => {
      const url = await presign();
      const attempt = mqtt.connectAsync(run.info.ws, {
        clientId: THING,
        protocolVersion,
        ca,
        reconnectPeriod: 0,
        connectTimeout: 5_000,
        transformWsUrl: () => url,
      });
      await expect(within(attempt, 10_000, 'CONNACK')).rejects.toMatchObject({ code });
      expect(device.connected).toBe(true);
    },
  );

  it("the device SDK's MQTT 5 WebSocket builder (SigV4, static credentials) connects, subscribes and receives", async () => {
    const { port } = new URL(run.info.ws);
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newWebsocketMqttBuilderWithSigv4Auth('127.0.0.1', {
      region: run.info.region,
      credentialsProvider: auth.AwsCredentialsProvider.newStatic(credentials.accessKeyId, credentials.secretAccessKey),
    })
      .withPort(Number(port))
      .withCertificateAuthority(ca)
      .withConnectProperties({ clientId: `${CONSOLE_CLIENT_ID_PREFIX}crt5`, keepAliveIntervalSeconds: 30 })
      .withMinReconnectDelayMs(30_000)
      .withMaxReconnectDelayMs(60_000)
      .withConnackTimeoutMs(5_000);
    const client = new mqtt5.Mqtt5Client(builder.build());
    client.on('error', () => undefined);
    try {
      const connected = new Promise<mqtt5.ConnackPacket>((resolve, reject) => {
        client.once('connectionSuccess', (e) => resolve(e.connack));
        client.once('connectionFailure', (e) => reject(new Error(`connect failed: ${String(e.error)}`)));
      });
      client.start();
      expect((await within(connected, 10_000, 'CRT MQTT 5 connection')).reasonCode).toBe(0);
      const suback = await client.subscribe({
        subscriptions: [
          { topicFilter: 'pifleet/+/telemetry', qos: mqtt5.QoS.AtLeastOnce },
          { topicFilter: 'pifleet/+/commands', qos: mqtt5.QoS.AtLeastOnce },
        ],
      });
      expect(suback.reasonCodes).toEqual([mqtt5.SubackReasonCode.GrantedQoS1, mqtt5.SubackReasonCode.NotAuthorized]);
      const received = within(
        new Promise<mqtt5.PublishPacket>((resolve) => client.once('messageReceived', (e) => resolve(e.message))),
        5_000,
        'CRT message',
      );
      await publishTelemetry('{"n":5}');
      const message = await received;
      expect(message.topicName).toBe(appTopics.telemetry(THING));
      expect(Buffer.from(message.payload as ArrayBuffer).toString()).toBe('{"n":5}');
    } finally {
      const stopped = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
      client.stop();
      await within(stopped, 5_000, 'CRT stopped').catch(() => undefined);
      client.close();
    }
  });

  it("the device SDK's MQTT 3.1.1 WebSocket builder (SigV4, static credentials) connects and subscribes", async () => {
    const { port } = new URL(run.info.ws);
    const config = iot.AwsIotMqttConnectionConfigBuilder.new_with_websockets({
      region: run.info.region,
      credentials_provider: auth.AwsCredentialsProvider.newStatic(credentials.accessKeyId, credentials.secretAccessKey),
    })
      .with_endpoint('127.0.0.1')
      .with_port(Number(port))
      .with_certificate_authority(ca)
      .with_client_id(`${CONSOLE_CLIENT_ID_PREFIX}crt3`)
      .with_clean_session(true)
      .build();
    const connection = new crt.MqttClient().new_connection(config);
    connection.on('error', () => undefined);
    try {
      expect(await within(connection.connect(), 10_000, 'CRT 3.1.1 connection')).toBe(false);
      let onMessage: (payload: string) => void = () => undefined;
      const received = new Promise<string>((resolve) => {
        onMessage = resolve;
      });
      const granted = await connection.subscribe('pifleet/+/telemetry', crt.QoS.AtMostOnce, (_topic, payload) =>
        onMessage(Buffer.from(payload).toString()),
      );
      expect(granted.qos).toBe(crt.QoS.AtMostOnce);
      const refused = await connection.subscribe('#', crt.QoS.AtMostOnce);
      expect(refused.qos).toBe(0x80);
      await publishTelemetry('{"n":6}');
      expect(await within(received, 5_000, 'CRT 3.1.1 message')).toBe('{"n":6}');
    } finally {
      await connection.disconnect().catch(() => undefined);
    }
  });
});

describe("the console's connection (createIotWebSocketConnection) against the core", () => {
  const options = (secretAccessKey: string) => ({
    url: run.info.ws,
    region: run.info.region,
    credentials: async () => ({ accessKeyId: credentials.accessKeyId, secretAccessKey }),
    clientId: `${CONSOLE_CLIENT_ID_PREFIX}adapter`,
    ca,
    log: silentLogger(),
    connectTimeoutMs: 5_000,
  });

  it('follows the live filters, and a filter outside the policy is refused', async () => {
    const live = createIotWebSocketConnection(options(credentials.secretAccessKey));
    try {
      await live.start();
      const received = new Promise<string>((resolve) => {
        void live.subscribe(appTopicFilters.telemetry, (m) => resolve(m.payload.toString()));
      });
      await expect(live.subscribe(appTopicFilters.commands, () => undefined)).rejects.toThrow(/Not authorized/);
      await publishTelemetry('{"n":7}');
      expect(await within(received, 5_000, 'live telemetry')).toBe('{"n":7}');
    } finally {
      await live.close();
    }
  });

  it('closes at once while it waits between reconnects (the wait grows to 30 s)', async () => {
    let secret = credentials.secretAccessKey;
    let asked = 0;
    const live = createIotWebSocketConnection({
      ...options(''),
      clientId: `${CONSOLE_CLIENT_ID_PREFIX}reconnect`,
      credentials: async () => {
        asked++;
        return { accessKeyId: credentials.accessKeyId, secretAccessKey: secret };
      },
    });
    await live.start();
    // From now on every reconnect is refused, and the waits between them grow.
    secret = 'not-the-secret';
    expect(run.core.services.broker.disconnectClient(`${CONSOLE_CLIENT_ID_PREFIX}reconnect`)).toBe(true);
    await expect.poll(() => asked, { timeout: 15_000, interval: 50 }).toBeGreaterThanOrEqual(4);
    const t0 = Date.now();
    await live.close();
    // The wait after the fourth refusal is 4 s, which close() used to sit out; 2 s leaves room for a
    // loaded machine without letting that through.
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(live.connected).toBe(false);
  }, 30_000);

  it('fails its start at once on a refused signature (the upgrade is answered 403)', async () => {
    const live = createIotWebSocketConnection(options('not-the-secret'));
    try {
      await expect(within(live.start(), 5_000, 'start to fail')).rejects.toThrow("Couldn't connect to server");
    } finally {
      await live.close();
    }
  });
});

describe('upgrades refused before any MQTT', () => {
  it.each<[string, number, string | undefined, () => Promise<string>]>([
    [
      'a signature made with a wrong secret',
      403,
      'InvalidSignatureException',
      () => presign({ secretAccessKey: 'not-the-secret' }),
    ],
    [
      'an expired URL (signed 20 minutes ago, valid 5)',
      403,
      'InvalidSignatureException',
      () => presign({ now: new Date(Date.now() - 20 * 60_000) }),
    ],
    ['no query at all', 403, 'MissingAuthenticationTokenException', async () => run.info.ws],
    [
      'an unknown access key',
      403,
      'UnrecognizedClientException',
      () => presign({ accessKeyId: 'AKIAUNKNOWNKEY000000' }),
    ],
    [
      "a session token with the core's long-term key",
      403,
      'UnrecognizedClientException',
      () => presign({ sessionToken: 'FwoGZXIvYXdzEXAMPLE' }),
    ],
    ['another path', 404, undefined, async () => (await presign()).replace('/mqtt?', '/ws?')],
    ['a URL over 8 KB', 414, undefined, async () => `${await presign()}&pad=${'x'.repeat(9_000)}`],
  ])('%s: HTTP %i', async (_what, status, errorType, url) => {
    // An HTTP answer, not 101: no WebSocket, so no MQTT packet of this client ever reached the broker.
    const answer = await upgrade(await url());
    expect(answer).toMatchObject({ status, ...(errorType === undefined ? {} : { errorType }) });
  });

  it('accepts the same URL that the refusals tampered with (101 Switching Protocols)', async () => {
    expect(await upgrade(await presign())).toMatchObject({ status: 101 });
  });

  it("refuses an upgrade that does not offer the 'mqtt' subprotocol: 400", async () => {
    expect(await upgrade(await presign(), ['mqttv3.1'])).toMatchObject({
      status: 400,
      body: expect.stringMatching(/mqtt/),
    });
  });

  it('refuses a 100 KB URL cleanly and keeps serving', async () => {
    const answer = await upgrade(`${await presign()}&pad=${'x'.repeat(100_000)}`);
    // Node's parser answers 431 past its 16 KiB header limit; a client still writing may see the reset first.
    if ('status' in answer) expect(answer.status).toBe(431);
    else expect(['ECONNRESET', 'EPIPE']).toContain(answer.error);
    const client = await connectWs(`${CONSOLE_CLIENT_ID_PREFIX}after-huge`);
    expect(client.connected).toBe(true);
  });
});

/** A port something else holds for the test's duration. */
async function occupiedPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('starting the WebSocket listener', () => {
  it('fails to start when its port is in use, naming it, and gives everything it started back', async () => {
    const busy = await occupiedPort();
    const coreDir = join(dir, 'busy');
    try {
      await expect(startInProcessCore(coreDir, { wsPort: busy.port })).rejects.toMatchObject({
        code: 'EADDRINUSE',
        message: expect.stringContaining(`:${busy.port}`),
      });
      // The data directory's lock and the other listeners were released: a core starts there at once.
      const again = await startInProcessCore(coreDir);
      await again.stop();
    } finally {
      await busy.close();
    }
  });

  it('the bin exits 69 when --ws-port is in use', async () => {
    const busy = await occupiedPort();
    try {
      const proc = spawnCore([
        '--data-dir',
        join(dir, 'busy-bin'),
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--ws-port',
        String(busy.port),
      ]);
      const exit = await within(proc.exited, 30_000, 'the bin to exit');
      expect(exit.code).toBe(EXIT.unavailable);
      expect(proc.stderr()).toMatch(new RegExp(`pifleet-local-core: .*EADDRINUSE.*:${busy.port}\\n`));
    } finally {
      await busy.close();
    }
  });

  it('refuses a --ws-policy file that is not a policy document: a configuration error naming the file', async () => {
    const file = join(dir, 'bad-policy.json');
    writeFileSync(
      file,
      JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'iot:Connect' }] }),
    );
    const core = createLocalIotCore({
      config: {
        ...LOCAL_CORE_DEFAULTS,
        dataDir: join(dir, 'bad-policy'),
        mqttPort: 0,
        httpPort: 0,
        wsPolicyFile: file,
      },
    });
    const failure = core.start();
    await expect(failure).rejects.toBeInstanceOf(ConfigError);
    await expect(failure).rejects.toThrow(`--ws-policy ${file}: not a policy document: Statement[0].Resource`);
  });
});
