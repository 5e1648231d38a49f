import { type JsonObject, jobsTopics } from '@pifleet/protocol';
import { beforeEach, describe, expect, it } from 'vitest';
import { JobsDeviceError } from '../../src/jobs/device-api.js';
import { createJobsMqtt, DEFAULT_JOBS_QUEUED_PER_THING, type JobsMqtt } from '../../src/jobs/mqtt.js';
import { type FakeDeviceApi, fakeDeviceApi } from './device-api-fake.js';

/**
 * The MQTT adapter of the jobs service on its own: requests in, answers out, against an in-memory
 * device API (the real service and real devices: mqtt-devices.test.ts). Payload shapes follow the
 * "Jobs device MQTT API operations" page and the examples of "Jobs notifications".
 */

const THING = 'MyThing';
const t = jobsTopics(THING);
/** 2017-03-09T21:48:43.309Z: AWS's start-next example's queuedAt, in ms. */
const QUEUED_AT = 1489096123309;
const NOW = 1489096425069;

interface Sent {
  readonly topic: string;
  readonly body: JsonObject;
}

let api: FakeDeviceApi;
let sent: Sent[];
let mqtt: JobsMqtt;

beforeEach(() => {
  api = fakeDeviceApi(() => NOW);
  sent = [];
  mqtt = createJobsMqtt({
    api,
    publish: async (topic, payload) => {
      sent.push({ topic, body: JSON.parse(payload) as JsonObject });
    },
    now: () => NOW,
  });
});

const enc = new TextEncoder();
async function request(topic: string, payload: unknown): Promise<Sent> {
  const bytes =
    payload instanceof Uint8Array
      ? payload
      : enc.encode(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const before = sent.length;
  await mqtt.handle({ topic, payload: bytes });
  expect(sent.length).toBe(before + 1);
  return sent[sent.length - 1] as Sent;
}

describe('jobs over MQTT: answers', () => {
  it('GetPendingJobExecutions answers the lists of summaries, times in seconds, the token echoed', async () => {
    api.queue(THING, 'job-1', '{"operation":"test"}', QUEUED_AT);
    const answer = await request(t.get, { clientToken: 'client-001' });
    expect(answer).toEqual({
      topic: t.getAccepted,
      body: {
        inProgressJobs: [],
        queuedJobs: [
          { jobId: 'job-1', queuedAt: 1489096123, lastUpdatedAt: 1489096123, versionNumber: 1, executionNumber: 1 },
        ],
        timestamp: 1489096425,
        clientToken: 'client-001',
      },
    });
  });

  it('StartNextPendingJobExecution answers the execution with its document as JSON', async () => {
    api.queue(THING, '022', '{"operation":"test"}', QUEUED_AT);
    const answer = await request(t.startNext, {
      clientToken: 'client-1',
      statusDetails: { step: 'download' },
      stepTimeoutInMinutes: 5,
    });
    expect(answer.topic).toBe(t.startNextAccepted);
    expect(answer.body).toEqual({
      execution: {
        jobId: '022',
        thingName: THING,
        jobDocument: { operation: 'test' },
        status: 'IN_PROGRESS',
        statusDetails: { step: 'download' },
        queuedAt: 1489096123,
        startedAt: 1489096425,
        lastUpdatedAt: 1489096425,
        approximateSecondsBeforeTimedOut: 300,
        versionNumber: 2,
        executionNumber: 1,
      },
      clientToken: 'client-1',
      timestamp: 1489096425,
    });
    expect(api.calls).toEqual([
      { op: 'startNext', thingName: THING, request: { statusDetails: { step: 'download' }, stepTimeoutInMinutes: 5 } },
    ]);
  });

  it('StartNextPendingJobExecution with nothing pending answers without an execution field', async () => {
    const answer = await request(t.startNext, {});
    expect(answer).toEqual({ topic: t.startNextAccepted, body: { timestamp: 1489096425 } });
  });

  it('DescribeJobExecution of $next, without its document when asked so', async () => {
    api.queue(THING, 'job-1', '{"a":1}', QUEUED_AT);
    const answer = await request(t.execution('$next').get, { includeJobDocument: false, clientToken: 'c' });
    expect(answer.topic).toBe('$aws/things/MyThing/jobs/$next/get/accepted');
    expect(answer.body.execution).toMatchObject({ jobId: 'job-1', status: 'QUEUED' });
    expect(answer.body.execution).not.toHaveProperty('jobDocument');
    expect(api.calls.at(-1)).toEqual({
      op: 'describe',
      thingName: THING,
      jobId: '$next',
      request: { includeJobDocument: false },
    });
  });

  it('DescribeJobExecution of an unknown job is ResourceNotFound, with the token and no executionState', async () => {
    const answer = await request(t.execution('nope').get, { clientToken: 'c-2', executionNumber: 3 });
    expect(answer).toEqual({
      topic: t.execution('nope').getRejected,
      body: {
        code: 'ResourceNotFound',
        message: 'Job execution nope of MyThing not found.',
        clientToken: 'c-2',
        timestamp: 1489096425,
      },
    });
  });

  it('UpdateJobExecution answers the state and document only when asked', async () => {
    api.queue(THING, 'job-1', '{"a":1}', QUEUED_AT);
    const plain = await request(t.execution('job-1').update, { status: 'IN_PROGRESS', clientToken: 'u1' });
    expect(plain).toEqual({
      topic: t.execution('job-1').updateAccepted,
      body: { timestamp: 1489096425, clientToken: 'u1' },
    });
    const full = await request(t.execution('job-1').update, {
      status: 'SUCCEEDED',
      statusDetails: { result: 'ok' },
      expectedVersion: 2,
      includeJobExecutionState: true,
      includeJobDocument: true,
    });
    expect(full.body).toEqual({
      executionState: { status: 'SUCCEEDED', statusDetails: { result: 'ok' }, versionNumber: 3 },
      jobDocument: { a: 1 },
      timestamp: 1489096425,
    });
  });

  it.each([
    ['VersionMismatch', { status: 'IN_PROGRESS', expectedVersion: 7, clientToken: 'v' }],
    ['InvalidStateTransition', { status: 'IN_PROGRESS', clientToken: 'v' }],
  ])('a %s rejection carries the current executionState', async (code, payload) => {
    api.queue(THING, 'job-1', '{}', QUEUED_AT);
    if (code === 'InvalidStateTransition') await request(t.execution('job-1').update, { status: 'FAILED' });
    const answer = await request(t.execution('job-1').update, payload);
    expect(answer.topic).toBe(t.execution('job-1').updateRejected);
    expect(answer.body).toMatchObject({ code, clientToken: 'v', timestamp: 1489096425 });
    expect(answer.body.executionState).toEqual(
      code === 'VersionMismatch' ? { status: 'QUEUED', versionNumber: 1 } : { status: 'FAILED', versionNumber: 2 },
    );
  });

  it('a rejection with another code carries no executionState even if the service gave one', async () => {
    api.failNext(new JobsDeviceError('TerminalStateReached', 'done', { status: 'SUCCEEDED', versionNumber: 4 }));
    const answer = await request(t.execution('job-1').get, { clientToken: 'x' });
    expect(answer.body).toEqual({
      code: 'TerminalStateReached',
      message: 'done',
      clientToken: 'x',
      timestamp: 1489096425,
    });
  });

  it('a failure inside the service is InternalError, and the device still gets its answer', async () => {
    api.failNext(new Error('disk on fire'));
    const answer = await request(t.get, { clientToken: 'x' });
    expect(answer).toEqual({
      topic: t.getRejected,
      body: { code: 'InternalError', message: 'An internal error occurred.', clientToken: 'x', timestamp: 1489096425 },
    });
  });
});

describe('jobs over MQTT: hostile and malformed requests', () => {
  it.each<[string, unknown, string, string | undefined]>([
    ['not JSON', '{"clientToken": "a",', 'InvalidJson', undefined],
    ['an empty payload', '', 'InvalidJson', undefined],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 'InvalidJson', undefined],
    ['a JSON array', '[1,2]', 'InvalidRequest', undefined],
    ['a number clientToken', { clientToken: 5 }, 'InvalidRequest', undefined],
    ['a clientToken over 64 bytes', { clientToken: 'x'.repeat(65) }, 'InvalidRequest', undefined],
    [
      '10,000 levels of nesting',
      `{"clientToken":"deep","statusDetails":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
      'InvalidRequest',
      'deep',
    ],
  ])('%s is refused (%s)', async (_what, payload, code, token) => {
    const answer = await request(t.startNext, payload);
    expect(answer.topic).toBe(t.startNextRejected);
    expect(answer.body.code).toBe(code);
    expect(answer.body.clientToken).toBe(token);
    expect(api.calls).toEqual([]);
  });

  it.each<[string, JsonObject, RegExp]>([
    ['no status', { clientToken: 't' }, /status is required/],
    ['a status a device may not set', { status: 'CANCELED', clientToken: 't' }, /status must be IN_PROGRESS/],
    ['a string expectedVersion', { status: 'FAILED', expectedVersion: '1', clientToken: 't' }, /expectedVersion/],
    ['a negative executionNumber', { status: 'FAILED', executionNumber: -1, clientToken: 't' }, /executionNumber/],
    ['a fractional step timeout', { status: 'FAILED', stepTimeoutInMinutes: 1.5, clientToken: 't' }, /stepTimeout/],
    ['statusDetails as a list', { status: 'FAILED', statusDetails: ['a'], clientToken: 't' }, /statusDetails/],
    ['a number in statusDetails', { status: 'FAILED', statusDetails: { a: 1 }, clientToken: 't' }, /statusDetails\.a/],
    ['a string includeJobDocument', { status: 'FAILED', includeJobDocument: 'yes', clientToken: 't' }, /true or false/],
  ])('an update with %s is InvalidRequest and never reaches the service', async (_what, payload, message) => {
    const answer = await request(t.execution('job-1').update, payload);
    expect(answer.body).toMatchObject({ code: 'InvalidRequest', clientToken: 't' });
    expect(String(answer.body.message)).toMatch(message);
    expect(api.calls).toEqual([]);
  });

  it('a __proto__ key in statusDetails is data: it reaches the service as an own key, and no prototype changes', async () => {
    api.queue(THING, 'job-1', '{}', QUEUED_AT);
    await request(t.execution('job-1').update, '{"status":"IN_PROGRESS","statusDetails":{"__proto__":"x","ok":"y"}}');
    const call = api.calls.at(-1);
    if (call?.op !== 'update') throw new Error('no update reached the service');
    const details = call.request.statusDetails ?? {};
    expect(Object.keys(details)).toEqual(['__proto__', 'ok']);
    expect(Object.getOwnPropertyDescriptor(details, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(details)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).ok).toBeUndefined();
  });

  it('a top-level __proto__ member is not read as a field', async () => {
    api.queue(THING, 'job-1', '{}', QUEUED_AT);
    const answer = await request(t.execution('job-1').update, '{"__proto__":{"status":"SUCCEEDED"},"clientToken":"p"}');
    expect(answer.body).toMatchObject({ code: 'InvalidRequest', clientToken: 'p' });
  });

  it('a request on a jobs topic that maps to no operation is InvalidTopic on that topic + /rejected', async () => {
    const answer = await request('$aws/things/MyThing/jobs/a.b/get', { clientToken: 'it' });
    expect(answer).toEqual({
      topic: '$aws/things/MyThing/jobs/a.b/get/rejected',
      body: {
        code: 'InvalidTopic',
        message: 'The request topic does not map to any jobs operation.',
        clientToken: 'it',
        timestamp: 1489096425,
      },
    });
  });

  it('answers, notifications, last wills and other topics are not requests', async () => {
    for (const topic of [t.getAccepted, t.execution('j').updateRejected, t.notify, t.notifyNext, 'pifleet/x/status']) {
      await mqtt.handle({ topic, payload: enc.encode('{}') });
    }
    await mqtt.handle({ topic: t.get, payload: enc.encode('{}'), lastWill: true });
    await mqtt.handle({ topic: '$aws/things/MyThing/jobs/a.b/get/rejected', payload: enc.encode('{}') });
    expect(sent).toEqual([]);
    expect(api.calls).toEqual([]);
  });

  it(`answers a thing's requests in order, and past ${DEFAULT_JOBS_QUEUED_PER_THING} queued says RequestThrottled`, async () => {
    const release = api.hold();
    const runs = Array.from({ length: DEFAULT_JOBS_QUEUED_PER_THING + 2 }, (_, i) =>
      mqtt.handle({ topic: t.get, payload: enc.encode(JSON.stringify({ clientToken: `r${i}` })) }),
    );
    // Another thing has a queue of its own.
    const other = mqtt.handle({ topic: jobsTopics('Other').get, payload: enc.encode('{"clientToken":"o"}') });
    await Promise.all(runs.slice(DEFAULT_JOBS_QUEUED_PER_THING));
    expect(sent.map((s) => [s.body.code, s.body.clientToken])).toEqual([
      ['RequestThrottled', `r${DEFAULT_JOBS_QUEUED_PER_THING}`],
      ['RequestThrottled', `r${DEFAULT_JOBS_QUEUED_PER_THING + 1}`],
    ]);
    release();
    await Promise.all([...runs, other]);
    await mqtt.idle();
    const accepted = sent.filter((s) => s.topic === t.getAccepted).map((s) => s.body.clientToken);
    expect(accepted).toEqual(Array.from({ length: DEFAULT_JOBS_QUEUED_PER_THING }, (_, i) => `r${i}`));
    expect(sent.some((s) => s.body.clientToken === 'o' && s.topic === jobsTopics('Other').getAccepted)).toBe(true);
  });
});

describe('jobs over MQTT: notifications', () => {
  it('notify carries the non-empty lists, as in AWS\'s "Jobs notifications" example', async () => {
    mqtt.notifications.executionsChanged(
      THING,
      {
        QUEUED: [
          {
            jobId: 'job1',
            queuedAt: 1517016947000,
            lastUpdatedAt: 1517016947000,
            executionNumber: 1,
            versionNumber: 1,
          },
        ],
        IN_PROGRESS: [],
      },
      1517016948000,
    );
    await mqtt.idle();
    expect(sent).toEqual([
      {
        topic: t.notify,
        body: {
          timestamp: 1517016948,
          jobs: {
            QUEUED: [
              { jobId: 'job1', queuedAt: 1517016947, lastUpdatedAt: 1517016947, executionNumber: 1, versionNumber: 1 },
            ],
          },
        },
      },
    ]);
  });

  it('notify with no pending execution is an empty jobs object', async () => {
    mqtt.notifications.executionsChanged(THING, {}, 1517189551000);
    await mqtt.idle();
    expect(sent).toEqual([{ topic: t.notify, body: { timestamp: 1517189551, jobs: {} } }]);
  });

  it('notify-next carries the next execution with its document, or only a timestamp when none is left', async () => {
    mqtt.notifications.nextChanged(
      THING,
      {
        jobId: 'job1',
        thingName: THING,
        status: 'QUEUED',
        queuedAt: 1517016947000,
        lastUpdatedAt: 1517016947000,
        versionNumber: 1,
        executionNumber: 1,
        jobDocument: '{"operation":"test"}',
      },
      1517016948000,
    );
    mqtt.notifications.nextChanged(THING, undefined, 1517189551000);
    await mqtt.idle();
    expect(sent).toEqual([
      {
        topic: t.notifyNext,
        body: {
          timestamp: 1517016948,
          execution: {
            jobId: 'job1',
            status: 'QUEUED',
            queuedAt: 1517016947,
            lastUpdatedAt: 1517016947,
            versionNumber: 1,
            executionNumber: 1,
            jobDocument: { operation: 'test' },
          },
        },
      },
      { topic: t.notifyNext, body: { timestamp: 1517189551 } },
    ]);
  });

  it('a notification the broker refuses is logged, not thrown', async () => {
    const failing = createJobsMqtt({
      api,
      publish: async () => {
        throw new Error('broker is not running');
      },
      now: () => NOW,
    });
    failing.notifications.nextChanged(THING, undefined, NOW);
    await expect(failing.idle()).resolves.toBeUndefined();
  });
});
