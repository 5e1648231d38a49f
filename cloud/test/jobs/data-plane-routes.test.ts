import { randomBytes } from 'node:crypto';
import { DescribeJobExecutionCommand as ControlPlaneDescribe, IoTClient } from '@aws-sdk/client-iot';
import {
  DescribeJobExecutionCommand,
  GetPendingJobExecutionsCommand,
  InvalidRequestException,
  InvalidStateTransitionException,
  IoTJobsDataPlaneClient,
  type IoTJobsDataPlaneServiceException,
  ResourceNotFoundException,
  ServiceUnavailableException,
  StartNextPendingJobExecutionCommand,
  TerminalStateException,
  ThrottlingException,
  UpdateJobExecutionCommand,
  type UpdateJobExecutionCommandInput,
} from '@aws-sdk/client-iot-jobs-data-plane';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { singleCredentialStore } from '../../src/http/credentials.js';
import { createHttpServer, type HttpServerHandle, type RouteGroup } from '../../src/http/server.js';
import { JOBS_DATA_ERRORS, JOBS_DATA_SIGNING_NAME, jobsDataPlaneRoutes } from '../../src/jobs/data-plane-routes.js';
import { type JobsDeviceApi, JobsDeviceError, type JobsErrorCode } from '../../src/jobs/device-api.js';
import { refusedWith } from '../http/harness.js';
import { type FakeDeviceApi, fakeDeviceApi } from './device-api-fake.js';

/**
 * The HTTP jobs data plane's routes behind the local core's HTTP server (SigV4), driven by the real
 * `@aws-sdk/client-iot-jobs-data-plane`, against an in-memory device API (the real service:
 * data-plane-core.test.ts). Beside them, a control-plane group that serves the same GET path for
 * `iot`, as the core's does: the signing name picks the group.
 */

const NOW = 1_700_000_123_456;
const credentials = { accessKeyId: 'AKIDJOBSTEST', secretAccessKey: randomBytes(20).toString('hex') };
const THING = 'pi-01';

let api: FakeDeviceApi;
let serving: JobsDeviceApi | undefined;
let server: HttpServerHandle;
let jobs: IoTJobsDataPlaneClient;
let endpoint: string;
let iot: IoTClient;

const controlPlane: RouteGroup = {
  name: 'control-plane',
  signingNames: ['iot'],
  routes: [
    {
      method: 'GET',
      path: '/things/{thingName}/jobs/{jobId}',
      operation: 'DescribeJobExecution',
      handle: (r) => ({
        json: { execution: { jobId: r.params.jobId, thingName: r.params.thingName, status: 'QUEUED' } },
      }),
    },
  ],
};

beforeAll(async () => {
  server = createHttpServer({
    host: '127.0.0.1',
    port: 0,
    region: 'us-east-1',
    credentials: singleCredentialStore(credentials),
    now: Date.now,
    // The control plane first: a route of the right path and method, but the wrong service, must not win.
    routes: [controlPlane, jobsDataPlaneRoutes({ api: () => serving })],
  });
  endpoint = (await server.start()).url;
  const common = { region: 'us-east-1', endpoint, credentials, maxAttempts: 1 };
  jobs = new IoTJobsDataPlaneClient(common);
  iot = new IoTClient(common);
});

afterAll(async () => {
  jobs.destroy();
  iot.destroy();
  await server.stop();
});

beforeEach(() => {
  api = fakeDeviceApi(() => NOW);
  serving = api;
});

type ErrorClass = new (...args: never[]) => IoTJobsDataPlaneServiceException;

describe('jobs data plane over HTTP', () => {
  it('signs as iot-jobs-data, the client package default', () => {
    expect(JOBS_DATA_SIGNING_NAME).toBe('iot-jobs-data');
  });

  it('GetPendingJobExecutions: the lists, times as seconds since the epoch', async () => {
    api.queue(THING, 'job-1', '{"op":"x"}', 1_700_000_000_999);
    const out = await jobs.send(new GetPendingJobExecutionsCommand({ thingName: THING }));
    expect(out.inProgressJobs).toEqual([]);
    expect(out.queuedJobs).toEqual([
      { jobId: 'job-1', queuedAt: 1_700_000_000, lastUpdatedAt: 1_700_000_000, versionNumber: 1, executionNumber: 1 },
    ]);
  });

  it('StartNextPendingJobExecution: the started execution, its document as text; none: no execution', async () => {
    api.queue(THING, 'job-1', '{"op":"x"}', 1_700_000_000_000);
    const out = await jobs.send(
      new StartNextPendingJobExecutionCommand({
        thingName: THING,
        statusDetails: { step: 'download' },
        stepTimeoutInMinutes: 10,
      }),
    );
    expect(out.execution).toEqual({
      jobId: 'job-1',
      thingName: THING,
      status: 'IN_PROGRESS',
      statusDetails: { step: 'download' },
      queuedAt: 1_700_000_000,
      startedAt: 1_700_000_123,
      lastUpdatedAt: 1_700_000_123,
      approximateSecondsBeforeTimedOut: 600,
      versionNumber: 2,
      executionNumber: 1,
      jobDocument: '{"op":"x"}',
    });
    expect(api.calls.at(-1)).toEqual({
      op: 'startNext',
      thingName: THING,
      request: { statusDetails: { step: 'download' }, stepTimeoutInMinutes: 10 },
    });
    const none = await jobs.send(new StartNextPendingJobExecutionCommand({ thingName: 'pi-02' }));
    expect(none.execution).toBeUndefined();
  });

  it('DescribeJobExecution: by job id with the query parameters, and $next', async () => {
    api.queue(THING, 'job-1', '{"op":"x"}', 1_700_000_000_000);
    const out = await jobs.send(
      new DescribeJobExecutionCommand({
        thingName: THING,
        jobId: 'job-1',
        includeJobDocument: false,
        executionNumber: 1,
      }),
    );
    expect(out.execution).toMatchObject({ jobId: 'job-1', status: 'QUEUED' });
    expect(out.execution?.jobDocument).toBeUndefined();
    expect(api.calls.at(-1)).toEqual({
      op: 'describe',
      thingName: THING,
      jobId: 'job-1',
      request: { includeJobDocument: false, executionNumber: 1 },
    });
    const next = await jobs.send(new DescribeJobExecutionCommand({ thingName: THING, jobId: '$next' }));
    expect(next.execution).toMatchObject({ jobId: 'job-1', jobDocument: '{"op":"x"}' });
  });

  it('the control plane and the data plane share GET /things/{thing}/jobs/{jobId}: the signing name decides', async () => {
    const control = await iot.send(new ControlPlaneDescribe({ thingName: THING, jobId: 'cp-1' }));
    expect(control.execution).toEqual({ jobId: 'cp-1', status: 'QUEUED' });
    expect(api.calls).toEqual([]);
    await refusedWith(
      jobs.send(new DescribeJobExecutionCommand({ thingName: THING, jobId: 'cp-1' })),
      ResourceNotFoundException,
      404,
    );
    expect(api.calls).toHaveLength(1);
  });

  it('UpdateJobExecution: expectedVersion, the state and document when asked', async () => {
    api.queue(THING, 'job-1', '{"op":"x"}', 1_700_000_000_000);
    const out = await jobs.send(
      new UpdateJobExecutionCommand({
        thingName: THING,
        jobId: 'job-1',
        status: 'SUCCEEDED',
        statusDetails: { result: 'ok' },
        expectedVersion: 1,
        includeJobExecutionState: true,
        includeJobDocument: true,
      }),
    );
    expect(out).toMatchObject({
      executionState: { status: 'SUCCEEDED', statusDetails: { result: 'ok' }, versionNumber: 2 },
      jobDocument: '{"op":"x"}',
    });
    const mismatch = await refusedWith(
      jobs.send(
        new UpdateJobExecutionCommand({ thingName: THING, jobId: 'job-1', status: 'FAILED', expectedVersion: 1 }),
      ),
      InvalidStateTransitionException,
      409,
    );
    expect(mismatch.message).toBe('The expected version does not match.');
  });

  it.each<[string, UpdateJobExecutionCommandInput, RegExp]>([
    ['a status a device may not set', { thingName: THING, jobId: 'job-1', status: 'CANCELED' }, /status must be/],
    ['an invalid job id', { thingName: THING, jobId: 'a.b', status: 'FAILED' }, /jobId must be/],
    ['$next as the job to update', { thingName: THING, jobId: '$next', status: 'FAILED' }, /jobId must be/],
    ['an invalid thing name', { thingName: 'a.b', jobId: 'job-1', status: 'FAILED' }, /thingName must be/],
  ])('UpdateJobExecution with %s is InvalidRequestException', async (_what, input, message) => {
    const err = await refusedWith(jobs.send(new UpdateJobExecutionCommand(input)), InvalidRequestException, 400);
    expect(err.message).toMatch(message);
    expect(api.calls).toEqual([]);
  });

  it.each<[JobsErrorCode, ErrorClass, number]>([
    ['InvalidRequest', InvalidRequestException, 400],
    ['InvalidStateTransition', InvalidStateTransitionException, 409],
    ['VersionMismatch', InvalidStateTransitionException, 409],
    ['ResourceNotFound', ResourceNotFoundException, 404],
    ['TerminalStateReached', TerminalStateException, 410],
    ['RequestThrottled', ThrottlingException, 429],
    ['InternalError', ServiceUnavailableException, 503],
  ])('the service refusing with %s is the client exception %s', async (code, type, status) => {
    expect(JOBS_DATA_ERRORS[code].status).toBe(status);
    api.failNext(new JobsDeviceError(code, `refused: ${code}`));
    const err = await refusedWith(jobs.send(new GetPendingJobExecutionsCommand({ thingName: THING })), type, status);
    expect(err.message).toBe(`refused: ${code}`);
  });

  it('before the service runs: 503 ServiceUnavailableException', async () => {
    serving = undefined;
    await refusedWith(
      jobs.send(new GetPendingJobExecutionsCommand({ thingName: THING })),
      ServiceUnavailableException,
      503,
    );
  });

  it('a __proto__ key in statusDetails reaches the service as an own key', async () => {
    api.queue(THING, 'job-1', '{}', 1_700_000_000_000);
    // The client copies a statusDetails map member by member, so it never sends a `__proto__` key
    // itself: the body is written here.
    await sendBody('{"status":"IN_PROGRESS","statusDetails":{"__proto__":"x","ok":"y"}}');
    const call = api.calls.at(-1);
    if (call?.op !== 'update') throw new Error('no update reached the service');
    const details = call.request.statusDetails ?? {};
    expect(Object.keys(details)).toEqual(['__proto__', 'ok']);
    expect(Object.getOwnPropertyDescriptor(details, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(details)).toBe(Object.prototype);
  });

  it.each<[string, string]>([
    ['nested 10,000 levels deep', `{"statusDetails":${'['.repeat(10_000)}${']'.repeat(10_000)}}`],
    ['not JSON', '{"status":'],
    ['a JSON list', '[]'],
  ])('a body %s is InvalidRequestException and never reaches the service', async (_what, body) => {
    await refusedWith(sendBody(body), InvalidRequestException, 400);
    expect(api.calls).toEqual([]);
  });
});

/**
 * UpdateJobExecution of job-1 with a body the client would never write: the real client, with the
 * body swapped in before it signs (so the signature covers it).
 */
async function sendBody(body: string) {
  const raw = new IoTJobsDataPlaneClient({ region: 'us-east-1', endpoint, credentials, maxAttempts: 1 });
  raw.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { body?: unknown; headers: Record<string, string> };
      request.body = body;
      request.headers['content-length'] = String(Buffer.byteLength(body));
      return next(args);
    },
    { step: 'build' },
  );
  try {
    return await raw.send(new UpdateJobExecutionCommand({ thingName: THING, jobId: 'job-1', status: 'FAILED' }));
  } finally {
    raw.destroy();
  }
}
