import {
  DescribeJobExecutionCommand as ControlDescribeJobExecution,
  CreateJobCommand,
  CreateThingCommand,
  ListJobExecutionsForThingCommand,
} from '@aws-sdk/client-iot';
import {
  DescribeJobExecutionCommand,
  GetPendingJobExecutionsCommand,
  InvalidStateTransitionException,
  IoTJobsDataPlaneClient,
  ResourceNotFoundException,
  StartNextPendingJobExecutionCommand,
  UpdateJobExecutionCommand,
} from '@aws-sdk/client-iot-jobs-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCore, localProfileCredentials } from '../../src/testing/in-process-core.js';
import { coreForFile, refusedWith } from '../http/harness.js';

/**
 * The HTTP jobs data plane of the running local core, with the real
 * `@aws-sdk/client-iot-jobs-data-plane` and the core's local credentials (as any AWS SDK reads its
 * shared-credentials file), beside the control plane's job routes on the same listener.
 */

let run: InProcessCore;
let jobs: IoTJobsDataPlaneClient;
const THING = 'http-device';

coreForFile('jobs-data', (started) => {
  run = started;
});

beforeAll(async () => {
  jobs = new IoTJobsDataPlaneClient({
    region: run.info.region,
    endpoint: run.info.http,
    credentials: localProfileCredentials(run.info),
    maxAttempts: 1,
  });
  await run.iot.send(new CreateThingCommand({ thingName: THING }));
});

afterAll(() => {
  jobs?.destroy();
});

describe('the jobs data plane of the local core', () => {
  it('runs a job over HTTP: pending, start-next, a stale update refused, success, terminal', async () => {
    const arn = `arn:aws:iot:${run.info.region}:${run.info.accountId}:thing/${THING}`;
    await run.iot.send(new CreateJobCommand({ jobId: 'http-1', targets: [arn], document: '{"operation":"test"}' }));

    const pending = await jobs.send(new GetPendingJobExecutionsCommand({ thingName: THING }));
    expect(pending.queuedJobs?.map((j) => j.jobId)).toEqual(['http-1']);
    const queuedAt = pending.queuedJobs?.[0]?.queuedAt as number;
    expect(Math.abs(queuedAt - Date.now() / 1000)).toBeLessThan(60);

    const started = await jobs.send(
      new StartNextPendingJobExecutionCommand({ thingName: THING, statusDetails: { step: 'one' } }),
    );
    expect(started.execution).toMatchObject({
      jobId: 'http-1',
      thingName: THING,
      status: 'IN_PROGRESS',
      statusDetails: { step: 'one' },
      jobDocument: '{"operation":"test"}',
    });
    const version = started.execution?.versionNumber as number;

    await refusedWith(
      jobs.send(
        new UpdateJobExecutionCommand({
          thingName: THING,
          jobId: 'http-1',
          status: 'SUCCEEDED',
          expectedVersion: version + 5,
        }),
      ),
      InvalidStateTransitionException,
      409,
    );
    const done = await jobs.send(
      new UpdateJobExecutionCommand({
        thingName: THING,
        jobId: 'http-1',
        status: 'SUCCEEDED',
        expectedVersion: version,
        includeJobExecutionState: true,
      }),
    );
    expect(done.executionState).toMatchObject({ status: 'SUCCEEDED', versionNumber: version + 1 });
    await refusedWith(
      jobs.send(new UpdateJobExecutionCommand({ thingName: THING, jobId: 'http-1', status: 'IN_PROGRESS' })),
      InvalidStateTransitionException,
      409,
    );
    const described = await jobs.send(new DescribeJobExecutionCommand({ thingName: THING, jobId: 'http-1' }));
    expect(described.execution).toMatchObject({ status: 'SUCCEEDED', jobDocument: '{"operation":"test"}' });
  });

  it('the control plane keeps its routes on the same paths (signed for iot)', async () => {
    const listed = await run.iot.send(new ListJobExecutionsForThingCommand({ thingName: THING }));
    expect(listed.executionSummaries?.map((s) => s.jobId)).toContain('http-1');
    const control = await run.iot.send(new ControlDescribeJobExecution({ thingName: THING, jobId: 'http-1' }));
    expect(control.execution).toMatchObject({ jobId: 'http-1', status: 'SUCCEEDED' });
  });

  it('an unknown job, and a thing that is not registered, are ResourceNotFoundException', async () => {
    await refusedWith(
      jobs.send(new DescribeJobExecutionCommand({ thingName: THING, jobId: 'nope' })),
      ResourceNotFoundException,
      404,
    );
    const err = await refusedWith(
      jobs.send(new GetPendingJobExecutionsCommand({ thingName: 'not-a-thing' })),
      ResourceNotFoundException,
      404,
    );
    expect(err.message).toBe('Thing not-a-thing does not exist.');
  });
});
