import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { IoTClient } from '@aws-sdk/client-iot';
import {
  appTopics,
  presenceTopics,
  RECOMMENDED_POLICY_NAME,
  recommendedDevicePolicy,
  shadowTopic,
} from '@pifleet/protocol';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalIotCore, type LocalCoreInfo, type LocalIotCore, localCorePaths } from '../../src/app/local-core.js';
import type { BusMessage } from '../../src/broker/broker.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import type { RuleErrorPayload } from '../../src/rules/actions/error-payload.js';
import { logFileName } from '../../src/rules/actions/log.js';
import { RULE_ERROR_LOG_GROUP } from '../../src/rules/definitions.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { closeQuietly, deviceConnection, within } from '../broker/fixtures.js';
import { credentialsFrom, iotClient, removeDir, tempDir } from '../http/harness.js';
import { apiClient, type ProvisionedThing, provisionThing } from './harness.js';

/**
 * The cloud half end to end on the composed local IoT Core, with real clients only: devices on
 * aws-iot-device-sdk-v2 over mutual TLS (certificates from @aws-sdk/client-iot with the
 * recommended policy), the command/query API over HTTP signed by AWS's SigV4 signer.
 */

let dir: string;
let core: LocalIotCore;
let info: LocalCoreInfo;
let iot: IoTClient;
let api: ReturnType<typeof apiClient>;
const connections: mqtt.MqttClientConnection[] = [];
let policyCreated = false;

beforeAll(async () => {
  dir = tempDir('e2e-cloud');
  core = createLocalIotCore({ config: { ...LOCAL_CORE_DEFAULTS, dataDir: dir, mqttPort: 0, httpPort: 0 } });
  info = await core.start();
  iot = iotClient(info);
  api = apiClient(info, await credentialsFrom(info.credentialsFile));
});
afterAll(async () => {
  await Promise.all(connections.map((c) => closeQuietly(c)));
  iot?.destroy();
  await core?.stop();
  removeDir(dir);
});

async function device(thingName: string): Promise<{ thing: ProvisionedThing; connection: mqtt.MqttClientConnection }> {
  const thing = await provisionThing(iot, thingName, {
    name: RECOMMENDED_POLICY_NAME,
    document: recommendedDevicePolicy(info.region, info.accountId),
    create: !policyCreated,
  });
  policyCreated = true;
  const connection = deviceConnection({
    port: info.mqtt.port,
    caCertPem: readFileSync(info.caFile, 'utf8'),
    cert: thing,
    clientId: thingName,
  });
  connections.push(connection);
  await within(connection.connect(), 10_000, 'device connect');
  return { thing, connection };
}

/** Resolves with the first bus message on `topic` (subscribed before the trigger). */
async function busMessage(topic: string): Promise<{ message: Promise<BusMessage> }> {
  let resolve!: (m: BusMessage) => void;
  const got = new Promise<BusMessage>((r) => {
    resolve = r;
  });
  const unsubscribe = await core.services.broker.bus.subscribe(topic, (m) => resolve(m));
  return { message: within(got, 10_000, `bus message on ${topic}`).finally(() => unsubscribe()) };
}

const T0 = 1_700_000_000_000;
const readings = (n: number, temperature = 21) =>
  Array.from({ length: n }, (_, i) => ({
    sensor: 'bme280',
    ts: T0 + i * 1000,
    metrics: { temperature: temperature + i / 10, humidity: 40 },
  }));

async function publishBatch(connection: mqtt.MqttClientConnection, thingName: string, payload: unknown) {
  await within(
    connection.publish(appTopics.telemetry(thingName), JSON.stringify(payload), mqtt.QoS.AtLeastOnce),
    5_000,
    'PUBACK',
  );
  // Nothing to wait for: the core acknowledges a QoS 1 message once its rules' actions are done.
}

function errorSinkLines(): { message: RuleErrorPayload }[] {
  const file = join(localCorePaths(dir).ruleLogDir, logFileName(RULE_ERROR_LOG_GROUP));
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { message: RuleErrorPayload });
}

describe('telemetry through the rules', () => {
  it('stores a batch through the ingest rule and handler, readable with the query API', async () => {
    const { connection } = await device('pi-t1');
    await publishBatch(connection, 'pi-t1', batchOf('pi-t1', 1, readings(5)));
    expect(await core.services.telemetry.countReadings('pi-t1')).toBe(5);

    const res = await api('GET', '/api/things/pi-t1/telemetry', {
      query: { from: String(T0), to: String(T0 + 60_000) },
    });
    expect(res.status).toBe(200);
    const items = res.body.items as { sensor: string; ts: number; seq: number; metrics: Record<string, number> }[];
    expect(items.map((i) => i.ts)).toEqual([0, 1, 2, 3, 4].map((i) => T0 + i * 1000));
    expect(items[0]).toMatchObject({ sensor: 'bme280', seq: 1, metrics: { temperature: 21, humidity: 40 } });

    const latest = await api('GET', '/api/things/pi-t1/latest');
    expect(latest.status).toBe(200);
    expect(latest.body.values).toContainEqual({ sensor: 'bme280', metric: 'humidity', value: 40, ts: T0 + 4000 });
  });

  it('stores a resent batch once', async () => {
    const { connection } = await device('pi-t2');
    const batch = batchOf('pi-t2', 7, readings(3));
    await publishBatch(connection, 'pi-t2', batch);
    await publishBatch(connection, 'pi-t2', batch);
    expect(await core.services.telemetry.countReadings('pi-t2')).toBe(3);
    const res = await api('GET', '/api/things/pi-t2/telemetry', {
      query: { from: String(T0), to: String(T0 + 60_000) },
    });
    expect((res.body.items as unknown[]).length).toBe(3);
    const ingest = core.services.rules.stats().rules.find((r) => r.name === 'pifleet_telemetry_ingest');
    expect(ingest?.actions.failed).toBe(0);
  });

  it('archives every telemetry message as received', async () => {
    const { connection } = await device('pi-t3');
    const batch = batchOf('pi-t3', 1, readings(2));
    await publishBatch(connection, 'pi-t3', batch);
    // Buffered, as Firehose buffers: nothing is written until the buffer is flushed.
    const folder = join(localCorePaths(dir).archiveDir, 'raw', 'thing=pi-t3');
    expect(existsSync(folder)).toBe(false);
    await core.services.rules.flushArchive();
    const files = readdirSync(folder, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.gz'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(
      /^date=\d{4}-\d{2}-\d{2}\/pifleet-telemetry-archive-1-\d{4}(-\d{2}){5}-[0-9a-f-]{36}\.jsonl\.gz$/,
    );
    const lines = gunzipSync(readFileSync(join(folder, files[0] as string))).toString('utf8');
    expect(lines).toBe(`${JSON.stringify({ ...batch, topicThing: 'pi-t3' })}\n`);
  });

  it('sends a poison batch to the error sink and stores the next batch', async () => {
    const { connection } = await device('pi-t4');
    const before = errorSinkLines().length;
    const poison = { v: 1, thingName: 'pi-t4', readings: 'nope' };
    await publishBatch(connection, 'pi-t4', poison);
    await publishBatch(connection, 'pi-t4', batchOf('pi-t4', 2, readings(4)));
    expect(await core.services.telemetry.countReadings('pi-t4')).toBe(4);

    const lines = errorSinkLines().slice(before);
    expect(lines).toHaveLength(1);
    const payload = lines[0]?.message;
    expect(payload).toMatchObject({
      ruleName: 'pifleet_telemetry_ingest',
      topic: appTopics.telemetry('pi-t4'),
      clientId: 'pi-t4',
      failures: [{ failedAction: 'LambdaAction', failedResource: 'ingest' }],
    });
    expect(JSON.parse(Buffer.from(payload?.base64OriginalPayload ?? '', 'base64').toString())).toEqual(poison);
    expect(payload?.failures[0]?.errorMessage).toMatch(/PoisonBatchError/);
  });

  it('republishes an alert that a permitted client receives', async () => {
    const { connection } = await device('pi-t5');
    await provisionThing(iot, 'ops-console', {
      name: 'ops-alerts',
      create: true,
      document: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'iot:Connect',
            Resource: `arn:aws:iot:${info.region}:${info.accountId}:client/ops-*`,
          },
          {
            Effect: 'Allow',
            Action: 'iot:Subscribe',
            Resource: `arn:aws:iot:${info.region}:${info.accountId}:topicfilter/pifleet/*/alerts`,
          },
          {
            Effect: 'Allow',
            Action: 'iot:Receive',
            Resource: `arn:aws:iot:${info.region}:${info.accountId}:topic/pifleet/*/alerts`,
          },
        ],
      },
    }).then(async (ops) => {
      const opsConnection = deviceConnection({
        port: info.mqtt.port,
        caCertPem: readFileSync(info.caFile, 'utf8'),
        cert: ops,
        clientId: 'ops-console',
      });
      connections.push(opsConnection);
      await within(opsConnection.connect(), 10_000, 'ops connect');
      let resolve!: (p: unknown) => void;
      const alert = new Promise<unknown>((r) => {
        resolve = r;
      });
      await opsConnection.subscribe('pifleet/+/alerts', mqtt.QoS.AtLeastOnce, (_topic, payload) =>
        resolve(JSON.parse(Buffer.from(payload).toString('utf8'))),
      );

      // 21.0 … 21.2 and 36.0 … 36.1: only the hot readings are listed.
      const batch = batchOf('pi-t5', 3, [...readings(3), ...readings(2, 36).map((r) => ({ ...r, ts: r.ts + 10_000 }))]);
      await publishBatch(connection, 'pi-t5', batch);
      expect(await within(alert, 10_000, 'alert')).toMatchObject({
        thingName: 'pi-t5',
        seq: 3,
        thresholdCelsius: 35,
        readings: [
          { sensor: 'bme280', ts: T0 + 10_000, temperature: 36 },
          { sensor: 'bme280', ts: T0 + 11_000, temperature: 36.1 },
        ],
      });
    });
    const alertRule = core.services.rules.stats().rules.find((r) => r.name === 'pifleet_temperature_alert');
    expect(alertRule?.matched).toBe(1);
  });
});

describe('presence', () => {
  it('records connectivity from the presence events, readable with the command API', async () => {
    const connected = await busMessage(presenceTopics.connected('pi-p1'));
    const { connection } = await device('pi-p1');
    await connected.message;
    await core.services.rules.idle();
    const online = await api('GET', '/api/things/pi-p1/connectivity');
    expect(online.status).toBe(200);
    expect(online.body).toMatchObject({ thingName: 'pi-p1', connected: true, lastEvent: { clientId: 'pi-p1' } });

    const disconnected = await busMessage(presenceTopics.disconnected('pi-p1'));
    await connection.disconnect();
    await disconnected.message;
    await core.services.rules.idle();
    const offline = await api('GET', '/api/things/pi-p1/connectivity');
    expect(offline.body).toMatchObject({
      connected: false,
      lastEvent: { eventType: 'disconnected', disconnectReason: 'CLIENT_INITIATED_DISCONNECT' },
    });
    // The fleet listing the console reads at start says the same.
    const listed = await api('GET', '/api/presence', { query: { limit: '250' } });
    expect(listed.status).toBe(200);
    const items = (listed.body as { items: { thingName: string }[] }).items;
    expect(items.find((i) => i.thingName === 'pi-p1')).toEqual({
      thingName: 'pi-p1',
      connected: false,
      at: expect.any(Number),
      reason: 'CLIENT_INITIATED_DISCONNECT',
    });
  });

  it('answers connectivity of a registered thing that never connected', async () => {
    await provisionThing(iot, 'pi-never', {
      name: RECOMMENDED_POLICY_NAME,
      document: recommendedDevicePolicy(info.region, info.accountId),
      create: !policyCreated,
    });
    policyCreated = true;
    const res = await api('GET', '/api/things/pi-never/connectivity');
    expect(res).toMatchObject({ status: 200, body: { thingName: 'pi-never', connected: false, lastEvent: null } });
  });
});

describe('command API', () => {
  it('sets desired state; the device gets the delta, reports back and the shadow converges', async () => {
    const { connection } = await device('pi-c1');
    let resolveDelta!: (p: Record<string, unknown>) => void;
    const delta = new Promise<Record<string, unknown>>((r) => {
      resolveDelta = r;
    });
    await connection.subscribe(shadowTopic('pi-c1', undefined, 'update/delta'), mqtt.QoS.AtLeastOnce, (_t, payload) =>
      resolveDelta(JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>),
    );

    const desired = { outputs: { relay: true }, sampling: { bme280: 5000 }, logLevel: 'debug' };
    const put = await api('PUT', '/api/things/pi-c1/desired', { body: { desired } });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ thingName: 'pi-c1', version: 1, state: { desired } });

    const got = await within(delta, 10_000, 'shadow delta');
    expect(got).toMatchObject({ version: 1, state: desired });

    // The device applies it and reports what it reached.
    let resolveAccepted!: () => void;
    const accepted = new Promise<void>((r) => {
      resolveAccepted = r;
    });
    await connection.subscribe(shadowTopic('pi-c1', undefined, 'update/accepted'), mqtt.QoS.AtLeastOnce, () =>
      resolveAccepted(),
    );
    await connection.publish(
      shadowTopic('pi-c1', undefined, 'update'),
      JSON.stringify({ state: { reported: desired } }),
      mqtt.QoS.AtLeastOnce,
    );
    await within(accepted, 10_000, 'update accepted');

    const shadow = await api('GET', '/api/things/pi-c1/shadow');
    expect(shadow.status).toBe(200);
    expect(shadow.body).toMatchObject({ thingName: 'pi-c1', version: 2, state: { desired, reported: desired } });
    expect((shadow.body.state as Record<string, unknown>).delta).toBeUndefined();
  });

  it('writes conditionally on the expected version: 409 when it moved, 200 when it matches', async () => {
    await device('pi-c2');
    const first = await api('PUT', '/api/things/pi-c2/desired', { body: { desired: { logLevel: 'info' } } });
    expect(first.body.version).toBe(1);
    await api('PUT', '/api/things/pi-c2/desired', { body: { desired: { logLevel: 'warn' } } });

    const stale = await api('PUT', '/api/things/pi-c2/desired', {
      body: { desired: { logLevel: 'error' }, expectedVersion: 1 },
    });
    expect(stale).toMatchObject({ status: 409, body: { expectedVersion: 1, currentVersion: 2 } });

    const fresh = await api('PUT', '/api/things/pi-c2/desired', {
      body: { desired: { logLevel: 'error', outputs: null }, expectedVersion: 2 },
    });
    expect(fresh).toMatchObject({ status: 200, body: { version: 3 } });
    const shadow = await api('GET', '/api/things/pi-c2/shadow');
    expect((shadow.body.state as { desired: unknown }).desired).toEqual({ logLevel: 'error' });
  });

  it('answers 400 listing every problem, before touching the shadow', async () => {
    await device('pi-c3');
    const res = await api('PUT', '/api/things/pi-c3/desired', {
      body: {
        desired: { sampling: { bme280: 5 }, logLevel: 'loud', batch: { maxReadings: 0 }, colour: 'red' },
        expectedVersion: 0,
        extra: true,
      },
    });
    expect(res.status).toBe(400);
    const paths = (res.body.issues as { path: string }[]).map((i) => i.path).sort();
    expect(paths).toEqual([
      'body.desired',
      'body.desired.batch.maxReadings',
      'body.desired.logLevel',
      'body.desired.sampling.bme280',
      'body.expectedVersion',
      'body.extra',
    ]);
    expect((await api('GET', '/api/things/pi-c3/shadow')).status).toBe(404);
  });

  it.each([
    ['PUT', '/api/things/nobody/desired', { desired: { logLevel: 'info' } }],
    ['GET', '/api/things/nobody/shadow', undefined],
    ['GET', '/api/things/nobody/connectivity', undefined],
  ])('answers 404 to %s %s for a thing the registry does not hold', async (method, path, body) => {
    const res = await api(method, path, body === undefined ? {} : { body });
    expect(res).toMatchObject({ status: 404, body: { message: 'thing nobody not found' } });
  });

  it.each([
    ['unsigned', { sign: false }, 'MissingAuthenticationTokenException'],
    ['signed for another service', { service: 'iotdata' }, 'InvalidSignatureException'],
  ])('refuses a request %s', async (_what, how, errorType) => {
    const client = 'service' in how ? apiClient(info, await credentialsFrom(info.credentialsFile), how.service) : api;
    const res = await client('GET', '/api/things/pi-t1/latest', 'sign' in how ? { sign: false } : {});
    expect(res.status).toBe(403);
    expect(res.headers['x-amzn-errortype']).toBe(errorType);
  });
});
