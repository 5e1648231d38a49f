import { CancelJobCommand, CreateJobCommand } from '@aws-sdk/client-iot';
import {
  type IotPolicyDocument,
  type JsonObject,
  jobsTopicPrefix,
  jobsTopics,
  LIMITS,
  MQTT5_REASON,
  type MqttProtocol,
} from '@pifleet/protocol';
import { iotjobs, type mqtt_request_response } from 'aws-iot-device-sdk-v2';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import {
  type Core,
  connectDevice,
  type DeviceClient,
  provisionThing,
  type Received,
  startCore,
  within,
} from '../conformance/harness.js';

/**
 * The jobs service over MQTT with real devices against the in-process core: the device SDK's
 * `iotjobs.IotJobsClientv2` over MQTT 3.1.1 and 5 (aws-crt) for the whole life of a job, and
 * mqtt.js over 3.1.1 and 5 for what the SDK would never send. Jobs are created and canceled with
 * the real `@aws-sdk/client-iot`. Every device has the recommended device policy.
 */

let core: Core;
const opened: Array<{ close(): Promise<void> }> = [];
let seq = 0;

beforeAll(async () => {
  core = await startCore('jobs-mqtt');
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  await core?.stop();
});

const thingArn = (thing: string) => `arn:aws:iot:${core.info.region}:${core.info.accountId}:thing/${thing}`;

async function createJob(thing: string, document: JsonObject = { operation: 'test' }): Promise<string> {
  seq += 1;
  const jobId = `job-${seq}`;
  await core.iot.send(new CreateJobCommand({ jobId, targets: [thingArn(thing)], document: JSON.stringify(document) }));
  return jobId;
}

const JOBS_OPTIONS = {
  maxRequestResponseSubscriptions: 6,
  maxStreamingSubscriptions: 4,
  operationTimeoutInSeconds: 10,
};

function jobsClientOf(device: DeviceClient): iotjobs.IotJobsClientv2 {
  const { native } = device;
  const client =
    native.protocol === '5'
      ? iotjobs.IotJobsClientv2.newFromMqtt5(native.client, JOBS_OPTIONS)
      : iotjobs.IotJobsClientv2.newFromMqtt311(native.connection, JOBS_OPTIONS);
  opened.push({ close: async () => client.close() });
  return client;
}

/** Events of one stream, with a bounded wait for the first that matches. */
function recorder<T>(what: string) {
  const seen: T[] = [];
  const waiters: Array<{ match: (e: T) => boolean; resolve: (e: T) => void }> = [];
  return {
    seen,
    push(e: T) {
      seen.push(e);
      for (const w of [...waiters]) {
        if (w.match(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    },
    next(match: (e: T) => boolean): Promise<T> {
      const found = seen.find(match);
      if (found !== undefined) return Promise.resolve(found);
      return within(new Promise<T>((resolve) => waiters.push({ match, resolve })), 10_000, what);
    },
  };
}

/** A notify or notify-next stream of the device SDK, opened and subscribed. */
async function openStream<T>(create: () => mqtt_request_response.StreamingOperation<T>, what: string) {
  const events = recorder<T>(what);
  const stream = create();
  const subscribed = new Promise<void>((resolve) =>
    stream.on('subscriptionStatus', (e) => {
      if ((e.type as number) === 0) resolve(); // SubscriptionStatusEventType.SubscriptionEstablished
    }),
  );
  stream.on('incomingPublish', (e) => events.push(e.message));
  stream.open();
  await within(subscribed, 10_000, `${what} subscribed`);
  opened.push({ close: async () => stream.close() });
  return events;
}

/** The SDK's rejection: the modeled ErrorResponse of a `/rejected` answer. */
async function rejected(promise: Promise<unknown>): Promise<JsonObject> {
  const err = (await promise.then(
    () => new Error('the request was accepted'),
    (e: unknown) => e,
  )) as { modeledError?: JsonObject };
  if (err.modeledError === undefined) throw new Error(`not a service rejection: ${String(err)}`);
  return err.modeledError;
}

describe.each<MqttProtocol>(['3.1.1', '5'])('the device SDK jobs client over MQTT %s', (protocol) => {
  const thing = `jobs-sdk-${protocol === '5' ? 'v5' : 'v311'}`;
  let jobs: iotjobs.IotJobsClientv2;
  let changes: ReturnType<typeof recorder<iotjobs.model.JobExecutionsChangedEvent>>;
  let nexts: ReturnType<typeof recorder<iotjobs.model.NextJobExecutionChangedEvent>>;

  beforeAll(async () => {
    const device = await connectDevice(core, await provisionThing(core, thing), protocol);
    opened.push(device);
    jobs = jobsClientOf(device);
    changes = await openStream(() => jobs.createJobExecutionsChangedStream({ thingName: thing }), `${thing} notify`);
    nexts = await openStream(
      () => jobs.createNextJobExecutionChangedStream({ thingName: thing }),
      `${thing} notify-next`,
    );
  });

  it('runs a job: notify and notify-next on create, get, start-next, a refused stale update, success, terminal', async () => {
    const jobId = await createJob(thing, { operation: 'test', n: 1 });
    const queued = await changes.next((e) => (e.jobs?.QUEUED ?? []).some((j) => j.jobId === jobId));
    expect(queued.timestamp).toEqual(expect.any(Number));
    const next = await nexts.next((e) => e.execution?.jobId === jobId);
    expect(next.execution).toMatchObject({ status: 'QUEUED', jobDocument: { operation: 'test', n: 1 } });
    // Seconds since the epoch, not milliseconds.
    expect(Math.abs((next.timestamp as unknown as number) - Date.now() / 1000)).toBeLessThan(60);

    const pending = await jobs.getPendingJobExecutions({ thingName: thing });
    expect(pending.queuedJobs?.map((j) => j.jobId)).toEqual([jobId]);
    expect(pending.inProgressJobs).toEqual([]);

    const started = await jobs.startNextPendingJobExecution({
      thingName: thing,
      statusDetails: { step: 'download' },
      stepTimeoutInMinutes: 10,
    });
    expect(started.execution).toMatchObject({
      jobId,
      thingName: thing,
      status: 'IN_PROGRESS',
      statusDetails: { step: 'download' },
      jobDocument: { operation: 'test', n: 1 },
    });
    const version = started.execution?.versionNumber as number;

    const stale = await rejected(
      jobs.updateJobExecution({
        thingName: thing,
        jobId,
        status: iotjobs.model.JobStatus.SUCCEEDED,
        expectedVersion: version - 1,
      }),
    );
    expect(stale).toMatchObject({
      code: 'VersionMismatch',
      executionState: { status: 'IN_PROGRESS', versionNumber: version },
    });
    expect(stale.clientToken).toEqual(expect.any(String));

    const done = await jobs.updateJobExecution({
      thingName: thing,
      jobId,
      status: iotjobs.model.JobStatus.SUCCEEDED,
      statusDetails: { step: 'done' },
      expectedVersion: version,
      includeJobExecutionState: true,
      includeJobDocument: true,
    });
    expect(done.executionState).toEqual({
      status: 'SUCCEEDED',
      statusDetails: { step: 'done' },
      versionNumber: version + 1,
    });
    expect(done.jobDocument).toEqual({ operation: 'test', n: 1 });
    await changes.next((e) => Object.keys(e.jobs ?? {}).length === 0);
    await nexts.next((e) => e.execution === undefined);

    const again = await rejected(
      jobs.updateJobExecution({ thingName: thing, jobId, status: iotjobs.model.JobStatus.IN_PROGRESS }),
    );
    expect(again).toMatchObject({ code: 'InvalidStateTransition', executionState: { status: 'SUCCEEDED' } });
    const described = await jobs.describeJobExecution({ thingName: thing, jobId, includeJobDocument: true });
    expect(described.execution).toMatchObject({ jobId, status: 'SUCCEEDED', jobDocument: { operation: 'test', n: 1 } });
  });

  it('a canceled job leaves the pending list: notify and notify-next say so', async () => {
    const jobId = await createJob(thing);
    await nexts.next((e) => e.execution?.jobId === jobId);
    const before = { changes: changes.seen.length, nexts: nexts.seen.length };
    await core.iot.send(new CancelJobCommand({ jobId }));
    await changes.next((e) => changes.seen.indexOf(e) >= before.changes && Object.keys(e.jobs ?? {}).length === 0);
    await nexts.next((e) => nexts.seen.indexOf(e) >= before.nexts && e.execution === undefined);
    const none = await jobs.describeJobExecution({ thingName: thing, jobId: '$next' });
    expect(none.execution).toBeUndefined();
  });

  it('an unknown job is ResourceNotFound', async () => {
    const answer = await rejected(jobs.describeJobExecution({ thingName: thing, jobId: 'no-such-job' }));
    expect(answer).toMatchObject({ code: 'ResourceNotFound' });
    expect(answer).not.toHaveProperty('executionState');
  });
});

/** A raw mqtt.js device: a subscription to its jobs answers, and the messages they bring. */
async function rawDevice(thing: string, version: 4 | 5, policy?: IotPolicyDocument) {
  const provisioned = await provisionThing(core, thing, policy ? { policy } : {});
  const options: IClientOptions = { ...thingMqttOptions(core.info, provisioned), protocolVersion: version };
  const client: MqttClient = await connectAsync(options);
  opened.push({ close: () => client.endAsync(true) });
  const received = recorder<Received & { readonly properties?: unknown }>(`${thing} messages`);
  client.on('message', (topic, payload, packet) => {
    let body: JsonObject | string = payload.toString();
    try {
      body = JSON.parse(body) as JsonObject;
    } catch {
      // left as text
    }
    received.push({ topic, payload: body, properties: packet.properties });
  });
  return { client, received, thingName: provisioned.thingName };
}

describe.each<[string, 4 | 5]>([
  ['3.1.1', 4],
  ['5', 5],
])('mqtt.js over MQTT %s: what the SDK never sends', (_name, version) => {
  const thing = `jobs-raw-v${version}`;
  let device: Awaited<ReturnType<typeof rawDevice>>;
  let t: ReturnType<typeof jobsTopics>;

  beforeAll(async () => {
    device = await rawDevice(thing, version);
    t = jobsTopics(thing);
    const granted = await device.client.subscribeAsync(
      [`${t.get}/+`, `${t.startNext}/+`, `${jobsTopicPrefix(thing)}/+/get/+`, `${jobsTopicPrefix(thing)}/+/update/+`],
      { qos: 1 },
    );
    expect(granted.map((g) => g.qos)).toEqual([1, 1, 1, 1]);
  });

  async function ask(topic: string, payload: string | Buffer, answer: string, token?: string) {
    await device.client.publishAsync(topic, payload, { qos: 1 });
    const got = await device.received.next(
      (m) => m.topic === answer && (token === undefined || (m.payload as JsonObject).clientToken === token),
    );
    return got.payload as JsonObject;
  }

  it('bad JSON is InvalidJson', async () => {
    const before = device.received.seen.length;
    await device.client.publishAsync(t.get, '{"clientToken": "x"', { qos: 1 });
    const got = await device.received.next(
      (m) => device.received.seen.indexOf(m) >= before && m.topic === t.getRejected,
    );
    expect(got.payload).toMatchObject({ code: 'InvalidJson' });
  });

  it('10,000 levels of nesting are InvalidRequest, the clientToken still echoed', async () => {
    const deep = `{"clientToken":"deep-${version}","statusDetails":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    const answer = await ask(t.startNext, deep, t.startNextRejected, `deep-${version}`);
    expect(answer).toMatchObject({ code: 'InvalidRequest', message: 'JSON is nested more than 64 levels deep' });
  });

  it('a __proto__ key in statusDetails is stored as data and pollutes nothing', async () => {
    const jobId = await createJob(thing);
    const token = `proto-${version}`;
    const answer = await ask(
      t.execution(jobId).update,
      `{"status":"IN_PROGRESS","statusDetails":{"__proto__":"x","polluted":"yes"},"includeJobExecutionState":true,"clientToken":"${token}"}`,
      t.execution(jobId).updateAccepted,
      token,
    );
    const details = (answer.executionState as JsonObject).statusDetails as JsonObject;
    expect(Object.keys(details).sort()).toEqual(['__proto__', 'polluted']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await ask(
      t.execution(jobId).update,
      `{"status":"SUCCEEDED","clientToken":"${token}-end"}`,
      t.execution(jobId).updateAccepted,
      `${token}-end`,
    );
  });

  it('an unknown job is ResourceNotFound; a job id that is none is InvalidTopic', async () => {
    const unknown = await ask(t.execution('ghost').get, '{"clientToken":"u"}', t.execution('ghost').getRejected, 'u');
    expect(unknown).toMatchObject({ code: 'ResourceNotFound', clientToken: 'u' });
    const badTopic = `${jobsTopicPrefix(thing)}/not.a.job/get`;
    const invalid = await ask(badTopic, '{"clientToken":"i"}', `${badTopic}/rejected`, 'i');
    expect(invalid).toMatchObject({ code: 'InvalidTopic', clientToken: 'i' });
  });

  it(`another thing's jobs are refused by the policy: ${version === 5 ? 'SUBACK and PUBACK 0x87' : 'SUBACK 0x80'}`, async () => {
    const other = jobsTopics(`jobs-raw-v${version === 5 ? 4 : 5}`);
    // mqtt.js rejects a refused SUBSCRIBE with the SUBACK it got.
    const refusal = (await device.client.subscribeAsync(other.notify, { qos: 1 }).then(
      () => undefined,
      (err: unknown) => err,
    )) as { packet?: { granted?: unknown[] } } | undefined;
    expect(refusal?.packet?.granted).toEqual([version === 5 ? MQTT5_REASON.NOT_AUTHORIZED : 0x80]);
    if (version === 5) {
      // …and a PUBACK that refuses with the error's code (mqtt.js's ErrorWithReasonCode).
      const ack = (await device.client.publishAsync(other.get, '{}', { qos: 1 }).then(
        () => undefined,
        (err: unknown) => err,
      )) as { code?: number } | undefined;
      expect(ack?.code).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    }
  });

  if (version === 5) {
    it('a request with a response topic and correlation data is answered on the documented topic only', async () => {
      const token = 'rt-5';
      await device.client.publishAsync(t.get, `{"clientToken":"${token}"}`, {
        qos: 1,
        properties: { responseTopic: `pifleet/${thing}/commands`, correlationData: Buffer.from('c-1') },
      });
      const got = await device.received.next(
        (m) => m.topic === t.getAccepted && (m.payload as JsonObject).clientToken === token,
      );
      expect((got.properties as { correlationData?: unknown } | undefined)?.correlationData).toBeUndefined();
    });
  }

  it(`a payload over 128 KB never reaches the service: ${version === 5 ? 'DISCONNECT 0x95' : 'the connection is closed'}`, async () => {
    // Last in this block: the broker ends the connection.
    const closed = new Promise<void>((resolve) => device.client.once('close', () => resolve()));
    const disconnect = new Promise<number | undefined>((resolve) =>
      device.client.once('disconnect', (packet) => resolve(packet.reasonCode)),
    );
    device.client.publish(t.get, Buffer.alloc(LIMITS.maxMessageBytes + 1, 0x20), { qos: 1 });
    if (version === 5) expect(await within(disconnect, 10_000, 'DISCONNECT')).toBe(MQTT5_REASON.PACKET_TOO_LARGE);
    await within(closed, 10_000, 'connection closed');
    expect(
      device.received.seen.some((m) => m.topic === t.getRejected && (m.payload as JsonObject).code === undefined),
    ).toBe(false);
  });
});

describe('a thing name that is no registered thing', () => {
  it('is ResourceNotFound on its rejected topic, for a client whose policy lets it name any thing', async () => {
    const name = 'jobs-admin';
    const arn = (kind: string, rest: string) =>
      `arn:aws:iot:${core.info.region}:${core.info.accountId}:${kind}/${rest}`;
    const anyJobs: IotPolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
        { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: arn('topic', '$aws/things/*/jobs/*') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$aws/things/*/jobs/*') },
      ],
    };
    const admin = await rawDevice(name, 5, anyJobs);
    const ghost = jobsTopics('no-such-thing');
    await admin.client.subscribeAsync(`${ghost.get}/+`, { qos: 1 });
    await admin.client.publishAsync(ghost.get, '{"clientToken":"g"}', { qos: 1 });
    const got = await admin.received.next((m) => m.topic === ghost.getRejected);
    expect(got.payload).toMatchObject({
      code: 'ResourceNotFound',
      message: 'Thing no-such-thing does not exist.',
      clientToken: 'g',
    });
  });
});
