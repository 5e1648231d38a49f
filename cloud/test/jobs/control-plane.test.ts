import {
  AddThingToThingGroupCommand,
  CancelJobCommand,
  CancelJobExecutionCommand,
  CreateJobCommand,
  type CreateJobCommandInput,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteJobCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  GetJobDocumentCommand,
  InvalidRequestException,
  InvalidStateTransitionException,
  type IoTClient,
  ListJobExecutionsForJobCommand,
  ListJobExecutionsForThingCommand,
  ListJobsCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  ThrottlingException,
  VersionConflictException,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsControlPlaneRoutes } from '../../src/jobs/control-plane-routes.js';
import type { JobsService } from '../../src/jobs/service.js';
import { API_TPS, apiQuotaOf, resolveLimits } from '../../src/limits/index.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { rejection } from '../http/harness.js';
import { recordingSink, type VirtualJobsClock, virtualJobsClock } from './service-bed.js';

/**
 * The jobs control plane through the real `@aws-sdk/client-iot` against the in-process core, on a
 * virtual jobs clock (rollout minutes and timeouts pass without waiting) and without API rates (a
 * test sends more than 10 requests a second). The device side is driven through the core's jobs
 * service (its MQTT and HTTP transports have their own tests).
 */

const MINUTE = 60_000;
let dir = '';
let run: InProcessCore;
let iot: IoTClient;
let jobs: JobsService;
let clock: VirtualJobsClock;
let arnPrefix = '';
const sink = recordingSink();
let n = 0;
const unique = (prefix: string) => `${prefix}-${++n}`;
const thingArn = (t: string) => `${arnPrefix}:thing/${t}`;
const groupArn = (g: string) => `${arnPrefix}:thinggroup/${g}`;

beforeAll(async () => {
  dir = tempDir('jobs-control-plane');
  clock = virtualJobsClock(Date.now());
  run = await startInProcessCore(dir, { jobsClock: clock, limits: resolveLimits('off') });
  iot = run.iot;
  jobs = run.core.services.jobs;
  jobs.setNotifications(sink);
  arnPrefix = `arn:aws:iot:${run.info.region}:${run.info.accountId}`;
});
afterAll(async () => {
  await run?.stop();
  if (dir) removeDir(dir);
});

async function things(count: number, prefix = 'thing'): Promise<string[]> {
  const names = Array.from({ length: count }, () => unique(prefix));
  for (const thingName of names) await iot.send(new CreateThingCommand({ thingName }));
  return names;
}

async function createJob(input: Omit<CreateJobCommandInput, 'jobId'> & { jobId?: string }): Promise<string> {
  const jobId = input.jobId ?? unique('job');
  await iot.send(new CreateJobCommand({ ...input, jobId }));
  return jobId;
}

const describeJob = async (jobId: string) => {
  const { job } = await iot.send(new DescribeJobCommand({ jobId }));
  if (!job) throw new Error('DescribeJob answered no job');
  return job;
};

/** `command` with its body replaced by `body` before the client signs it (a body the client would never write). */
function withBody<C extends { middlewareStack: { add: (...args: never[]) => unknown } }>(
  command: C,
  body: string | Uint8Array,
): C {
  (command.middlewareStack as CreateJobCommand['middlewareStack']).add(
    (next) => async (args) => {
      const request = args.request as { body?: unknown; headers: Record<string, string> };
      request.body = body;
      request.headers['content-length'] = String(Buffer.byteLength(body));
      return next(args);
    },
    { step: 'build' },
  );
  return command;
}

/** Things that can see a pending execution of the job now. */
async function notifiedOf(jobId: string, names: readonly string[]): Promise<string[]> {
  const seen: string[] = [];
  for (const t of names) {
    const p = await jobs.getPending(t);
    if ([...p.queuedJobs, ...p.inProgressJobs].some((e) => e.jobId === jobId)) seen.push(t);
  }
  return seen;
}

describe('CreateJob, DescribeJob, ListJobs, GetJobDocument', () => {
  it('creates a job on things and answers it with the IoT model fields', async () => {
    const [a, b] = await things(2);
    const jobId = await createJob({
      targets: [thingArn(a as string), thingArn(b as string)],
      document: '{"operation":"pifleet.reboot"}',
      description: 'reboot two',
      timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      presignedUrlConfig: { expiresInSec: 600 },
    });
    const job = await describeJob(jobId);
    expect(job).toMatchObject({
      jobArn: `${arnPrefix}:job/${jobId}`,
      jobId,
      status: 'IN_PROGRESS',
      targetSelection: 'SNAPSHOT',
      targets: [thingArn(a as string), thingArn(b as string)],
      description: 'reboot two',
      forceCanceled: false,
      isConcurrent: false,
      timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      presignedUrlConfig: { expiresInSec: 600 },
      jobProcessDetails: { numberOfQueuedThings: 2, numberOfInProgressThings: 0, numberOfSucceededThings: 0 },
    });
    // Epoch seconds on the wire, with the milliseconds of the jobs clock.
    expect(job.createdAt?.getTime()).toBe(clock.now());

    const { document } = await iot.send(new GetJobDocumentCommand({ jobId }));
    expect(document).toBe('{"operation":"pifleet.reboot"}');
    const listed = await iot.send(new ListJobsCommand({ status: 'IN_PROGRESS', maxResults: 250 }));
    expect(listed.jobs?.find((j) => j.jobId === jobId)).toMatchObject({
      status: 'IN_PROGRESS',
      targetSelection: 'SNAPSHOT',
    });
    await rejection(
      iot.send(new CreateJobCommand({ jobId, targets: [thingArn(a as string)], document: '{}' })),
      ResourceAlreadyExistsException,
      409,
    );
    await rejection(iot.send(new DescribeJobCommand({ jobId: 'no-such-job' })), ResourceNotFoundException, 404);
  });

  it('pages ListJobs with nextToken and refuses a forged token', async () => {
    const [t] = await things(1);
    const ids = [await createJob({ targets: [thingArn(t as string)], document: '{}' })];
    ids.push(await createJob({ targets: [thingArn(t as string)], document: '{}' }));
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await iot.send(new ListJobsCommand({ maxResults: 1, ...(nextToken ? { nextToken } : {}) }));
      expect(page.jobs?.length).toBeLessThanOrEqual(1);
      seen.push(...(page.jobs ?? []).map((j) => j.jobId as string));
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
    expect(seen).toEqual(expect.arrayContaining(ids));
    await rejection(iot.send(new ListJobsCommand({ nextToken: 'not-a-token' })), InvalidRequestException, 400);
  });

  it('targets a thing group with its child groups, and lists executions by job and by thing', async () => {
    const parent = unique('fleet');
    const child = unique('fleet-eu');
    await iot.send(new CreateThingGroupCommand({ thingGroupName: parent }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: child, parentGroupName: parent }));
    const [p1, c1, c2] = await things(3);
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: parent, thingName: p1 }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: child, thingName: c1 }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: child, thingName: c2 }));
    const jobId = await createJob({ targets: [groupArn(parent)], document: '{}' });

    const byJob = await iot.send(new ListJobExecutionsForJobCommand({ jobId }));
    expect(byJob.executionSummaries?.map((s) => s.thingArn).sort()).toEqual(
      [p1, c1, c2].map((t) => thingArn(t as string)).sort(),
    );
    expect(byJob.executionSummaries?.[0]?.jobExecutionSummary).toMatchObject({
      status: 'QUEUED',
      executionNumber: 1,
      retryAttempt: 0,
    });
    const byThing = await iot.send(new ListJobExecutionsForThingCommand({ thingName: c2 }));
    expect(byThing.executionSummaries?.map((s) => s.jobId)).toEqual([jobId]);
    const byGroup = await iot.send(new ListJobsCommand({ thingGroupName: parent }));
    expect(byGroup.jobs?.map((j) => j.jobId)).toEqual([jobId]);
    expect((await iot.send(new ListJobsCommand({ thingGroupName: child }))).jobs).toEqual([]);
    await rejection(
      iot.send(new CreateJobCommand({ jobId: unique('job'), targets: [groupArn('no-such-group')], document: '{}' })),
      ResourceNotFoundException,
      404,
    );
  });

  it('gives a thing added to a target group later an execution of a CONTINUOUS job, not of a SNAPSHOT one', async () => {
    const group = unique('cont');
    const child = unique('cont-child');
    await iot.send(new CreateThingGroupCommand({ thingGroupName: group }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: child, parentGroupName: group }));
    const [first, late] = await things(2);
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: group, thingName: first }));
    const continuous = await createJob({ targets: [groupArn(group)], document: '{}', targetSelection: 'CONTINUOUS' });
    const snapshot = await createJob({ targets: [groupArn(group)], document: '{}' });
    sink.clear();

    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: child, thingName: late }));
    const late1 = await iot.send(new ListJobExecutionsForThingCommand({ thingName: late }));
    expect(late1.executionSummaries?.map((s) => s.jobId)).toEqual([continuous]);
    expect(sink.of(late as string).map((x) => x.kind)).toEqual(['notify', 'notify-next']);
    expect((await describeJob(continuous)).jobProcessDetails?.numberOfQueuedThings).toBe(2);
    expect((await describeJob(snapshot)).jobProcessDetails?.numberOfQueuedThings).toBe(1);

    // A CONTINUOUS job never completes; a SNAPSHOT one does when its executions end.
    for (const t of [first, late]) {
      for (const job of [continuous, snapshot]) {
        if ((await notifiedOf(job, [t as string])).length > 0)
          await jobs.update(t as string, job, { status: 'SUCCEEDED' });
      }
    }
    expect((await describeJob(continuous)).status).toBe('IN_PROGRESS');
    expect((await describeJob(snapshot)).status).toBe('COMPLETED');
  });
});

describe('rollout', () => {
  it('notifies at most maximumPerMinute things a minute', async () => {
    const names = await things(5, 'roll');
    const jobId = await createJob({
      targets: names.map(thingArn),
      document: '{}',
      jobExecutionsRolloutConfig: { maximumPerMinute: 2 },
    });
    expect(await notifiedOf(jobId, names)).toEqual(names.slice(0, 2));
    const job = await describeJob(jobId);
    expect(job.isConcurrent).toBe(true);
    expect(job.jobProcessDetails?.processingTargets).toEqual(names.map(thingArn));
    // Every execution is QUEUED in the counts, notified or not.
    expect(job.jobProcessDetails?.numberOfQueuedThings).toBe(5);

    clock.advance(MINUTE - 1);
    expect(await notifiedOf(jobId, names)).toHaveLength(2);
    clock.advance(1);
    expect(await notifiedOf(jobId, names)).toEqual(names.slice(0, 4));
    clock.advance(MINUTE);
    expect(await notifiedOf(jobId, names)).toEqual(names);
    expect((await describeJob(jobId)).isConcurrent).toBe(false);
  });

  it('grows an exponential rate by incrementFactor each numberOfNotifiedThings, up to maximumPerMinute', async () => {
    const names = await things(12, 'exp');
    const jobId = await createJob({
      targets: names.map(thingArn),
      document: '{}',
      jobExecutionsRolloutConfig: {
        maximumPerMinute: 5,
        exponentialRate: {
          baseRatePerMinute: 1,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfNotifiedThings: 2 },
        },
      },
    });
    const counts = [(await notifiedOf(jobId, names)).length];
    for (let minute = 0; minute < 4; minute++) {
      clock.advance(MINUTE);
      counts.push((await notifiedOf(jobId, names)).length);
    }
    // The rate is recomputed as things are notified and applies to the minute under way: minute 1
    // admits 1 (rate 1); minute 2 admits 1, reaching 2 notified, so the rate is 2 and one more goes
    // (3); minute 3 starts at 2, grows to 4 at 4 notified and 5 (the cap) at 6: 5 more (8);
    // minute 4 admits the last 4 of 12.
    expect(counts).toEqual([1, 3, 8, 12, 12]);
  });

  it('grows the rate with numberOfSucceededThings', async () => {
    const names = await things(4, 'succ');
    const jobId = await createJob({
      targets: names.map(thingArn),
      document: '{}',
      jobExecutionsRolloutConfig: {
        maximumPerMinute: 10,
        exponentialRate: {
          baseRatePerMinute: 1,
          incrementFactor: 3,
          rateIncreaseCriteria: { numberOfSucceededThings: 1 },
        },
      },
    });
    expect(await notifiedOf(jobId, names)).toEqual(names.slice(0, 1));
    // One success raises the rate to 3 within the same minute: the next two are notified at once.
    await jobs.update(names[0] as string, jobId, { status: 'SUCCEEDED' });
    expect(await notifiedOf(jobId, names)).toEqual(names.slice(1, 3));
  });
});

describe('abort, timeouts and retries', () => {
  it('cancels the job when FAILED executions reach thresholdPercentage after minNumberOfExecutedThings', async () => {
    const names = await things(10, 'abort');
    const jobId = await createJob({
      targets: names.map(thingArn),
      document: '{}',
      abortConfig: {
        criteriaList: [
          { failureType: 'FAILED', action: 'CANCEL', thresholdPercentage: 50, minNumberOfExecutedThings: 4 },
        ],
      },
    });
    for (const t of names.slice(0, 3)) await jobs.update(t, jobId, { status: 'FAILED' });
    // 3 of 3 executed failed, but fewer than 4 things have executed.
    expect((await describeJob(jobId)).status).toBe('IN_PROGRESS');
    await jobs.startNext(names[9] as string, {});
    await jobs.update(names[3] as string, jobId, { status: 'SUCCEEDED' });
    const job = await describeJob(jobId);
    expect(job.status).toBe('CANCELED');
    expect(job.comment).toMatch(/FAILED/);
    // QUEUED executions are canceled; the one IN_PROGRESS keeps running (the job was not forced).
    expect(job.jobProcessDetails).toMatchObject({
      numberOfFailedThings: 3,
      numberOfSucceededThings: 1,
      numberOfCanceledThings: 5,
      numberOfInProgressThings: 1,
      numberOfQueuedThings: 0,
    });
  });

  it('times an execution out after inProgressTimeoutInMinutes and after the step timer', async () => {
    const [a, b] = await things(2, 'timeout');
    const jobId = await createJob({
      targets: [thingArn(a as string), thingArn(b as string)],
      document: '{}',
      timeoutConfig: { inProgressTimeoutInMinutes: 10 },
    });
    await jobs.startNext(a as string, {});
    await jobs.startNext(b as string, { stepTimeoutInMinutes: 2 });
    const described = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: b as string }));
    expect(described.execution).toMatchObject({ status: 'IN_PROGRESS', approximateSecondsBeforeTimedOut: 120 });

    clock.advance(2 * MINUTE);
    const stepped = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: b as string }));
    expect(stepped.execution).toMatchObject({ status: 'TIMED_OUT', versionNumber: 3 });
    expect(stepped.execution?.approximateSecondsBeforeTimedOut).toBeUndefined();
    // A step timer reset by an update keeps the device going past the first one.
    await jobs.update(a as string, jobId, { status: 'IN_PROGRESS', stepTimeoutInMinutes: 5 });
    clock.advance(5 * MINUTE);
    const timedOut = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: a as string }));
    expect(timedOut.execution?.status).toBe('TIMED_OUT');
    const job = await describeJob(jobId);
    expect(job).toMatchObject({ status: 'COMPLETED', jobProcessDetails: { numberOfTimedOutThings: 2 } });
    expect(job.completedAt).toBeInstanceOf(Date);
  });

  it('times out at the in-progress timeout even while the device keeps resetting its step timer', async () => {
    const [a] = await things(1, 'inprog');
    const jobId = await createJob({
      targets: [thingArn(a as string)],
      document: '{}',
      timeoutConfig: { inProgressTimeoutInMinutes: 3 },
    });
    await jobs.startNext(a as string, { stepTimeoutInMinutes: 2 });
    clock.advance(MINUTE + 30_000);
    await jobs.update(a as string, jobId, { status: 'IN_PROGRESS', stepTimeoutInMinutes: 2 });
    clock.advance(90_000 - 1);
    expect((await jobs.describe(a as string, jobId, {}))?.status).toBe('IN_PROGRESS');
    clock.advance(1);
    expect((await jobs.describe(a as string, jobId, {}))?.status).toBe('TIMED_OUT');
  });

  it('retries a FAILED execution as a new executionNumber, numberOfRetries times', async () => {
    const [a] = await things(1, 'retry');
    const jobId = await createJob({
      targets: [thingArn(a as string)],
      document: '{}',
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 1 }] },
    });
    await jobs.update(a as string, jobId, { status: 'FAILED' });
    const latest = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: a as string }));
    expect(latest.execution).toMatchObject({ status: 'QUEUED', executionNumber: 2, versionNumber: 1 });
    const first = await iot.send(
      new DescribeJobExecutionCommand({ jobId, thingName: a as string, executionNumber: 1 }),
    );
    expect(first.execution?.status).toBe('FAILED');
    const listed = await iot.send(new ListJobExecutionsForJobCommand({ jobId }));
    expect(listed.executionSummaries?.[0]?.jobExecutionSummary).toMatchObject({ executionNumber: 2, retryAttempt: 1 });
    // The old execution is no longer the thing's: the device gets the retry.
    expect((await jobs.startNext(a as string, {}))?.executionNumber).toBe(2);
    await jobs.update(a as string, jobId, { status: 'FAILED' });
    expect((await describeJob(jobId)).status).toBe('COMPLETED');
    expect((await describeJob(jobId)).jobProcessDetails?.numberOfFailedThings).toBe(1);
  });
});

describe('cancel and delete', () => {
  it('cancels a job: QUEUED executions at once, IN_PROGRESS ones only with force', async () => {
    const [a, b] = await things(2, 'cancel');
    const jobId = await createJob({ targets: [thingArn(a as string), thingArn(b as string)], document: '{}' });
    await jobs.startNext(a as string, {});
    sink.clear();
    await iot.send(new CancelJobCommand({ jobId, reasonCode: 'BAD_RELEASE', comment: 'wrong build' }));
    let job = await describeJob(jobId);
    expect(job).toMatchObject({
      status: 'CANCELED',
      reasonCode: 'BAD_RELEASE',
      comment: 'wrong build',
      forceCanceled: false,
    });
    expect(job.jobProcessDetails).toMatchObject({ numberOfCanceledThings: 1, numberOfInProgressThings: 1 });
    // b's queued execution left its pending list: b is told, a is not.
    expect(sink.of(b as string).map((x) => x.kind)).toEqual(['notify', 'notify-next']);
    expect(sink.of(a as string)).toEqual([]);

    await iot.send(new CancelJobCommand({ jobId, force: true }));
    job = await describeJob(jobId);
    expect(job).toMatchObject({ forceCanceled: true, jobProcessDetails: { numberOfCanceledThings: 2 } });
    const forced = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: a as string }));
    expect(forced.execution).toMatchObject({ status: 'CANCELED', forceCanceled: true });
  });

  it('refuses to cancel a COMPLETED job', async () => {
    const [a] = await things(1, 'done');
    const jobId = await createJob({ targets: [thingArn(a as string)], document: '{}' });
    await jobs.update(a as string, jobId, { status: 'SUCCEEDED' });
    await rejection(iot.send(new CancelJobCommand({ jobId })), InvalidStateTransitionException, 409);
  });

  it('cancels one execution: QUEUED, IN_PROGRESS only with force, and checks expectedVersion', async () => {
    const [a, b] = await things(2, 'cancel-exec');
    const jobId = await createJob({ targets: [thingArn(a as string), thingArn(b as string)], document: '{}' });
    await iot.send(new CancelJobExecutionCommand({ jobId, thingName: a as string }));
    await rejection(
      iot.send(new CancelJobExecutionCommand({ jobId, thingName: a as string })),
      InvalidStateTransitionException,
      409,
    );
    await jobs.startNext(b as string, {});
    await rejection(
      iot.send(new CancelJobExecutionCommand({ jobId, thingName: b as string })),
      InvalidStateTransitionException,
      409,
    );
    await rejection(
      iot.send(new CancelJobExecutionCommand({ jobId, thingName: b as string, force: true, expectedVersion: 1 })),
      VersionConflictException,
      409,
    );
    const details = JSON.parse('{"__proto__":"x","why":"operator"}') as Record<string, string>;
    await iot.send(
      new CancelJobExecutionCommand({
        jobId,
        thingName: b as string,
        force: true,
        expectedVersion: 2,
        statusDetails: details,
      }),
    );
    const e = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: b as string }));
    expect(e.execution).toMatchObject({ status: 'CANCELED', forceCanceled: true, versionNumber: 3 });
    expect(JSON.stringify(e.execution?.statusDetails?.detailsMap)).toBe('{"__proto__":"x","why":"operator"}');
    expect(({} as Record<string, unknown>).why).toBeUndefined();
    expect((await describeJob(jobId)).status).toBe('COMPLETED');
    await rejection(
      iot.send(new CancelJobExecutionCommand({ jobId, thingName: 'ghost' })),
      ResourceNotFoundException,
      404,
    );
  });

  it('deletes a job in progress only with force, and its things are told', async () => {
    const [a] = await things(1, 'delete');
    const jobId = await createJob({ targets: [thingArn(a as string)], document: '{}' });
    await rejection(iot.send(new DeleteJobCommand({ jobId })), InvalidStateTransitionException, 409);
    sink.clear();
    await iot.send(new DeleteJobCommand({ jobId, force: true }));
    await rejection(iot.send(new DescribeJobCommand({ jobId })), ResourceNotFoundException, 404);
    expect(sink.of(a as string).map((x) => x.kind)).toEqual(['notify', 'notify-next']);
    expect(sink.of(a as string)[1]?.execution).toBeUndefined();
    expect((await jobs.getPending(a as string)).queuedJobs).toEqual([]);
    await rejection(iot.send(new DeleteJobCommand({ jobId })), ResourceNotFoundException, 404);
  });
});

describe('hostile and bad input', () => {
  const bad = (input: Partial<CreateJobCommandInput>) =>
    rejection(
      iot.send(new CreateJobCommand({ jobId: unique('bad'), targets: [thingArn('x')], document: '{}', ...input })),
      InvalidRequestException,
      400,
    );

  it.each([
    ['a document nested 10,000 deep', { document: `${'['.repeat(10_000)}${']'.repeat(10_000)}` }, /nested/],
    ['a document over 32,768 characters', { document: JSON.stringify({ pad: 'x'.repeat(32_800) }) }, /32768/],
    ['a document that is not JSON', { document: '{not json' }, /not valid JSON/],
    ['a jobId with a dot', { jobId: 'bad.id' }, /jobId/],
    [
      'a documentSource without an artifact store',
      { document: undefined, documentSource: 'https://s3/b/k' },
      /documentSource/,
    ],
    ['both document and documentSource', { documentSource: 'https://s3/b/k' }, /Exactly one/],
    ['a scheduling configuration', { schedulingConfig: { startTime: '2030-01-01T00:00' } }, /not supported/],
    ['maximumPerMinute over 1000', { jobExecutionsRolloutConfig: { maximumPerMinute: 1001 } }, /maximumPerMinute/],
    [
      'an abort threshold over 100',
      {
        abortConfig: {
          criteriaList: [
            { failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 101, minNumberOfExecutedThings: 1 },
          ],
        },
      },
      /thresholdPercentage/,
    ],
    ['a target that is not an ARN', { targets: ['thing/x'] }, /not a thing or thing group ARN/],
    [
      'an abort threshold with three decimals',
      {
        abortConfig: {
          criteriaList: [
            { failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 10.999, minNumberOfExecutedThings: 1 },
          ],
        },
      },
      /two digits/,
    ],
    [
      'an incrementFactor with two decimals',
      {
        jobExecutionsRolloutConfig: {
          exponentialRate: {
            baseRatePerMinute: 1,
            incrementFactor: 1.55,
            rateIncreaseCriteria: { numberOfNotifiedThings: 1 },
          },
        },
      },
      /one digit/,
    ],
  ] as const)('refuses %s', async (_what, input, message) => {
    const [t] = await things(1, 'hostile');
    const err = await bad({ targets: [thingArn(t as string)], ...(input as Partial<CreateJobCommandInput>) });
    expect(err.message).toMatch(message);
  });

  // The client writes only the model's fields, so each body is swapped in before it signs.
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  it.each([
    [
      'CreateJob with 10,000-deep tags',
      (t: string) => `{"targets":["${thingArn(t)}"],"document":"{}","tags":${deep(10_000)}}`,
    ],
    [
      'CreateJob with a 10,000-deep unknown member of its rollout',
      (t: string) =>
        `{"targets":["${thingArn(t)}"],"document":"{}","jobExecutionsRolloutConfig":{"x":${deep(10_000)}}}`,
    ],
    ['CreateJob with 65 levels', (t: string) => `{"targets":["${thingArn(t)}"],"document":"{}","tags":${deep(64)}}`],
  ])('refuses %s with InvalidRequestException and creates nothing', async (_what, body) => {
    const [t] = await things(1, 'deep');
    const jobId = unique('deep');
    const send = new CreateJobCommand({ jobId, targets: [thingArn(t as string)], document: '{}' });
    const err = await rejection(iot.send(withBody(send, body(t as string))), InvalidRequestException, 400);
    expect(err.message).toBe('JSON is nested more than 64 levels deep');
    await rejection(iot.send(new DescribeJobCommand({ jobId })), ResourceNotFoundException, 404);
  });

  it('refuses a 10,000-deep CancelJob and CancelJobExecution body, and cancels nothing', async () => {
    const [a] = await things(1, 'deep-cancel');
    const jobId = await createJob({ targets: [thingArn(a as string)], document: '{}' });
    const body = `{"comment":"c","statusDetails":{"x":"y"},"z":${deep(10_000)}}`;
    await rejection(iot.send(withBody(new CancelJobCommand({ jobId }), body)), InvalidRequestException, 400);
    await rejection(
      iot.send(withBody(new CancelJobExecutionCommand({ jobId, thingName: a as string }), body)),
      InvalidRequestException,
      400,
    );
    expect((await describeJob(jobId)).status).toBe('IN_PROGRESS');
    expect((await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: a as string }))).execution?.status).toBe(
      'QUEUED',
    );
  });

  it('refuses a body that is not UTF-8 rather than store U+FFFD for its bytes', async () => {
    const [t] = await things(1, 'latin1');
    const jobId = unique('latin1');
    // é as its Latin-1 byte (0xE9), which is not UTF-8.
    const body = Buffer.from(
      `{"targets":["${thingArn(t as string)}"],"document":"{}","description":"caf\u00e9"}`,
      'latin1',
    );
    const send = new CreateJobCommand({ jobId, targets: [thingArn(t as string)], document: '{}' });
    const err = await rejection(iot.send(withBody(send, body)), InvalidRequestException, 400);
    expect(err.message).toBe('The request body is not valid UTF-8.');
    await rejection(iot.send(new DescribeJobCommand({ jobId })), ResourceNotFoundException, 404);
  });

  it('refuses statusDetails a device may not set, and an unknown execution number', async () => {
    const [a] = await things(1, 'details');
    const jobId = await createJob({ targets: [thingArn(a as string)], document: '{}' });
    const many = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']));
    await rejection(
      iot.send(new CancelJobExecutionCommand({ jobId, thingName: a as string, statusDetails: many })),
      InvalidRequestException,
      400,
    );
    await rejection(
      iot.send(new DescribeJobExecutionCommand({ jobId, thingName: a as string, executionNumber: 9 })),
      ResourceNotFoundException,
      404,
    );
    // Nothing changed by the refused cancel.
    expect((await iot.send(new DescribeJobExecutionCommand({ jobId, thingName: a as string }))).execution?.status).toBe(
      'QUEUED',
    );
  });
});

describe('API rates', () => {
  it('has a rate for every job operation but DescribeJobExecution, whose name the device API shares', () => {
    const operations = jobsControlPlaneRoutes({ jobs }).routes.map((r) => r.operation);
    expect(operations.filter((op) => apiQuotaOf(op) === undefined)).toEqual(['DescribeJobExecution']);
    expect(API_TPS.CreateJob).toBe(10);
  });

  it('answers ThrottlingException past 10 ListJobs a second on the default limits', async () => {
    const limitedDir = tempDir('jobs-rates');
    const limited = await startInProcessCore(limitedDir);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 14 }, () => limited.iot.send(new ListJobsCommand({}))),
      );
      const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(10);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.every((e) => e instanceof ThrottlingException)).toBe(true);
    } finally {
      await limited.stop();
      removeDir(limitedDir);
    }
  });
});
