import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/http/errors.js';
import { JobsDeviceError } from '../../src/jobs/device-api.js';
import { createJobsService, type JobsService } from '../../src/jobs/service.js';
import { type JobsStore, openSqliteJobsStore } from '../../src/jobs/store.js';
import type { Registry } from '../../src/registry/sqlite-registry.js';
import { registryForFile } from '../registry/bed.js';
import { jobsFile, recordingSink, type VirtualJobsClock, virtualJobsClock } from './service-bed.js';

const account = { region: 'eu-west-1', accountId: '123456789012' };
const thingArn = (n: string) => `arn:aws:iot:eu-west-1:123456789012:thing/${n}`;
let dir = '';
let files = 0;
const openRegistry = registryForFile('jobs-service', account, Date.now, (bed) => {
  dir = bed.dir;
});

interface Bed {
  readonly registry: Registry;
  readonly store: JobsStore;
  readonly clock: VirtualJobsClock;
  readonly sink: ReturnType<typeof recordingSink>;
  readonly jobs: JobsService;
}
const beds: Bed[] = [];
afterEach(() => {
  for (const b of beds.splice(0)) {
    b.jobs.stop();
    b.store.close();
    b.registry.close();
  }
});

function bed(things: readonly string[], options: { resolveDocument?: (d: string) => string } = {}): Bed {
  const registry = openRegistry();
  for (const t of things) registry.createThing({ thingName: t });
  const store = openSqliteJobsStore({ path: jobsFile(dir, ++files) });
  const clock = virtualJobsClock();
  const sink = recordingSink();
  const jobs = createJobsService({
    store,
    registry,
    clock,
    notifications: sink,
    ...(options.resolveDocument ? { resolveDocument: options.resolveDocument } : {}),
  });
  jobs.start();
  const b = { registry, store, clock, sink, jobs };
  beds.push(b);
  return b;
}

async function deviceError(p: Promise<unknown>): Promise<JobsDeviceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(JobsDeviceError);
  return err as JobsDeviceError;
}

describe('jobs service: the device side', () => {
  it('queues an execution per target thing, tells each thing, and starts the oldest on StartNext', async () => {
    const { jobs, sink, clock } = bed(['t1', 't2'], { resolveDocument: (d) => d.replace('PLACEHOLDER', 'https://x') });
    await jobs.createJob({ jobId: 'j1', targets: [thingArn('t1'), thingArn('t2')], document: '{"url":"PLACEHOLDER"}' });

    const pending = await jobs.getPending('t1');
    expect(pending.inProgressJobs).toEqual([]);
    expect(pending.queuedJobs).toMatchObject([{ jobId: 'j1', versionNumber: 1, executionNumber: 1 }]);
    expect(sink.of('t1').map((n) => n.kind)).toEqual(['notify', 'notify-next']);
    expect(sink.of('t1')[0]?.jobs?.QUEUED?.[0]?.jobId).toBe('j1');
    expect(sink.of('t1')[1]?.execution?.jobDocument).toBe('{"url":"https://x"}');

    clock.advance(5_000);
    sink.clear();
    const started = await jobs.startNext('t1', { statusDetails: { step: 'download' }, stepTimeoutInMinutes: 5 });
    expect(started).toMatchObject({
      jobId: 'j1',
      status: 'IN_PROGRESS',
      versionNumber: 2,
      statusDetails: { step: 'download' },
      startedAt: clock.now(),
      approximateSecondsBeforeTimedOut: 300,
      jobDocument: '{"url":"https://x"}',
    });
    // QUEUED -> IN_PROGRESS changes the list (notify); the next execution is the same one.
    expect(sink.of('t1').map((n) => n.kind)).toEqual(['notify']);
    expect(sink.of('t1')[0]?.jobs).toEqual({ IN_PROGRESS: [expect.objectContaining({ jobId: 'j1' })] });
    // StartNext again returns the one in progress, unchanged.
    expect(await jobs.startNext('t1', {})).toMatchObject({ jobId: 'j1', versionNumber: 2 });
  });

  it('updates with expectedVersion, refuses a stale version and any change after a terminal status', async () => {
    const { jobs } = bed(['t1']);
    await jobs.createJob({ jobId: 'j1', targets: [thingArn('t1')], document: '{}' });
    await jobs.startNext('t1', {});
    const stale = await deviceError(jobs.update('t1', 'j1', { status: 'SUCCEEDED', expectedVersion: 1 }));
    expect(stale.code).toBe('VersionMismatch');
    expect(stale.executionState).toEqual({ status: 'IN_PROGRESS', versionNumber: 2 });

    const done = await jobs.update('t1', 'j1', {
      status: 'SUCCEEDED',
      expectedVersion: 2,
      statusDetails: { result: 'ok' },
      includeJobExecutionState: true,
      includeJobDocument: true,
    });
    expect(done).toEqual({
      executionState: { status: 'SUCCEEDED', statusDetails: { result: 'ok' }, versionNumber: 3 },
      jobDocument: '{}',
    });
    const again = await deviceError(jobs.update('t1', 'j1', { status: 'IN_PROGRESS' }));
    expect(again.code).toBe('InvalidStateTransition');
    expect(again.executionState?.status).toBe('SUCCEEDED');
    expect(jobs.describeJob('j1').job.status).toBe('COMPLETED');
    expect(jobs.describeJob('j1').details.numberOfSucceededThings).toBe(1);
  });

  it('describes $next and a given execution, and an unknown one is ResourceNotFound', async () => {
    const { jobs } = bed(['t1']);
    expect(await jobs.describe('t1', '$next', {})).toBeUndefined();
    await jobs.createJob({ jobId: 'j1', targets: [thingArn('t1')], document: '{"a":1}' });
    expect(await jobs.describe('t1', '$next', { includeJobDocument: false })).toMatchObject({
      jobId: 'j1',
      status: 'QUEUED',
    });
    expect((await jobs.describe('t1', 'j1', { executionNumber: 1 }))?.jobDocument).toBe('{"a":1}');
    expect((await deviceError(jobs.describe('t1', 'nope', {}))).code).toBe('ResourceNotFound');
    expect((await deviceError(jobs.describe('t1', 'j1', { executionNumber: 2 }))).code).toBe('ResourceNotFound');
  });

  it('keeps a __proto__ statusDetails key as data and refuses more than 10 details', async () => {
    const { jobs } = bed(['t1']);
    await jobs.createJob({ jobId: 'j1', targets: [thingArn('t1')], document: '{}' });
    const details = JSON.parse('{"__proto__":"polluted","ok":"yes"}') as Record<string, string>;
    await jobs.update('t1', 'j1', { status: 'IN_PROGRESS', statusDetails: details });
    const e = await jobs.describe('t1', 'j1', {});
    expect(Object.hasOwn(e?.statusDetails ?? {}, '__proto__')).toBe(true);
    expect(JSON.stringify(e?.statusDetails)).toBe('{"__proto__":"polluted","ok":"yes"}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(e?.statusDetails)).toBe(Object.prototype);

    const eleven = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']));
    const err = await deviceError(jobs.update('t1', 'j1', { status: 'IN_PROGRESS', statusDetails: eleven }));
    expect(err.code).toBe('InvalidRequest');
    const long = await deviceError(
      jobs.update('t1', 'j1', { status: 'IN_PROGRESS', statusDetails: { k: 'v'.repeat(1025) } }),
    );
    expect(long.code).toBe('InvalidRequest');
    // Nothing changed by the refused updates.
    expect((await jobs.describe('t1', 'j1', {}))?.versionNumber).toBe(2);
  });

  it('refuses a second job with the same id, and unknown targets', async () => {
    const { jobs } = bed(['t1']);
    await jobs.createJob({ jobId: 'j1', targets: [thingArn('t1')], document: '{}' });
    await expect(jobs.createJob({ jobId: 'j1', targets: [thingArn('t1')], document: '{}' })).rejects.toMatchObject({
      errorType: 'ResourceAlreadyExistsException',
    });
    await expect(jobs.createJob({ jobId: 'j2', targets: [thingArn('ghost')], document: '{}' })).rejects.toMatchObject({
      code: 'ResourceNotFoundException',
    });
    expect(() => jobs.describeJob('j2')).toThrow(ApiError);
  });
});

describe('jobs service: notifications, documents and restarts', () => {
  it('tells a thing when its execution ends: an empty list and no next execution', async () => {
    const { jobs, sink } = bed(['t1']);
    await jobs.createJob({ jobId: 'j1', targets: [thingArn('t1')], document: '{}' });
    await jobs.startNext('t1', {});
    sink.clear();
    await jobs.update('t1', 'j1', { status: 'IN_PROGRESS', statusDetails: { progress: '50' } });
    // Same status, same list: nothing to tell.
    expect(sink.seen).toEqual([]);
    await jobs.update('t1', 'j1', { status: 'SUCCEEDED' });
    expect(sink.of('t1')).toEqual([
      { kind: 'notify', thingName: 't1', jobs: {}, at: expect.any(Number) },
      { kind: 'notify-next', thingName: 't1', execution: undefined, at: expect.any(Number) },
    ]);
  });

  it('resolves the document each time a device is handed it, never in the stored job', async () => {
    let calls = 0;
    const { jobs } = bed(['t1'], {
      resolveDocument: (d) => {
        calls += 1;
        return d.replace('${aws:iot:s3-presigned-url:b/k}', `https://signed/${calls}`);
      },
    });
    await jobs.createJob({
      jobId: 'j1',
      targets: [thingArn('t1')],
      document: '{"url":"${aws:iot:s3-presigned-url:b/k}"}',
    });
    const before = calls;
    expect((await jobs.startNext('t1', {}))?.jobDocument).toBe(`{"url":"https://signed/${before + 1}"}`);
    expect((await jobs.describe('t1', 'j1', { includeJobDocument: true }))?.jobDocument).toBe(
      `{"url":"https://signed/${before + 2}"}`,
    );
    expect((await jobs.update('t1', 'j1', { status: 'IN_PROGRESS', includeJobDocument: true })).jobDocument).toBe(
      `{"url":"https://signed/${before + 3}"}`,
    );
    expect(jobs.getJobDocument('j1')).toBe('{"url":"${aws:iot:s3-presigned-url:b/k}"}');
  });

  it('completes a SNAPSHOT job on an empty group at once', async () => {
    const { jobs, registry } = bed([]);
    registry.createThingGroup({ thingGroupName: 'empty' });
    const job = await jobs.createJob({
      jobId: 'j1',
      targets: ['arn:aws:iot:eu-west-1:123456789012:thinggroup/empty'],
      document: '{}',
    });
    expect(job.status).toBe('COMPLETED');
  });

  it('marks a QUEUED execution REMOVED when its thing leaves the target group of a CONTINUOUS job', async () => {
    const { jobs, registry, sink } = bed(['t1', 't2']);
    registry.createThingGroup({ thingGroupName: 'g' });
    registry.addThingToThingGroup({ thingGroupName: 'g', thingName: 't1' });
    registry.addThingToThingGroup({ thingGroupName: 'g', thingName: 't2' });
    await jobs.createJob({
      jobId: 'j1',
      targets: ['arn:aws:iot:eu-west-1:123456789012:thinggroup/g'],
      document: '{}',
      targetSelection: 'CONTINUOUS',
    });
    await jobs.startNext('t2', {});
    sink.clear();
    registry.removeThingFromThingGroup({ thingGroupName: 'g', thingName: 't1' });
    registry.removeThingFromThingGroup({ thingGroupName: 'g', thingName: 't2' });
    expect(jobs.describeExecution('j1', 't1').execution.status).toBe('REMOVED');
    // One already started keeps running.
    expect(jobs.describeExecution('j1', 't2').execution.status).toBe('IN_PROGRESS');
    expect(sink.of('t1').map((n) => n.kind)).toEqual(['notify', 'notify-next']);
    expect(jobs.describeJob('j1').details.numberOfRemovedThings).toBe(1);
  });

  it('marks the pending executions of a deleted thing REMOVED, so a SNAPSHOT job on it can complete', async () => {
    const { jobs, registry, sink, clock } = bed(['t1', 't2', 't3']);
    await jobs.createJob({
      jobId: 'j1',
      targets: ['t1', 't2'].map(thingArn),
      document: '{}',
      inProgressTimeoutInMinutes: 5,
    });
    await jobs.createJob({ jobId: 'j2', targets: ['t1', 't3'].map(thingArn), document: '{}' });
    await jobs.startNext('t1', {});
    await jobs.update('t2', 'j1', { status: 'SUCCEEDED' });
    sink.clear();
    registry.deleteThing({ thingName: 't1' });
    expect(jobs.describeExecution('j1', 't1').execution).toMatchObject({ status: 'REMOVED', versionNumber: 3 });
    expect(jobs.describeExecution('j2', 't1').execution.status).toBe('REMOVED');
    expect(jobs.describeJob('j1').job.status).toBe('COMPLETED');
    expect(jobs.describeJob('j1').details.numberOfRemovedThings).toBe(1);
    expect(jobs.describeJob('j2').job.status).toBe('IN_PROGRESS');
    expect(sink.of('t1').map((n) => n.kind)).toEqual(['notify', 'notify-next']);
    // Its in-progress timer went with it.
    clock.advance(10 * 60_000);
    expect(jobs.describeExecution('j1', 't1').execution.status).toBe('REMOVED');
    // A thing created again under the name starts with no pending execution.
    registry.createThing({ thingName: 't1' });
    expect(await jobs.getPending('t1')).toEqual({ inProgressJobs: [], queuedJobs: [] });
  });

  it('keeps its jobs, rollout and timers across a restart of the service', async () => {
    const b = bed(['t1', 't2', 't3']);
    const file = jobsFile(dir, files);
    await b.jobs.createJob({
      jobId: 'j1',
      targets: ['t1', 't2', 't3'].map(thingArn),
      document: '{}',
      rollout: { maximumPerMinute: 1 },
      inProgressTimeoutInMinutes: 5,
    });
    await b.jobs.startNext('t1', {});
    b.jobs.stop();
    b.store.close();
    expect(b.clock.pending()).toBe(0);

    const store = openSqliteJobsStore({ path: file });
    const jobs = createJobsService({ store, registry: b.registry, clock: b.clock });
    jobs.start();
    beds.push({ ...b, store, jobs });
    expect((await jobs.getPending('t2')).queuedJobs).toEqual([]);
    b.clock.advance(60_000);
    expect((await jobs.getPending('t2')).queuedJobs).toHaveLength(1);
    b.clock.advance(4 * 60_000);
    expect((await jobs.describe('t1', 'j1', {}))?.status).toBe('TIMED_OUT');
  });
});
