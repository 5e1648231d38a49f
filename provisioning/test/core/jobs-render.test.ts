import type { JobExecutionCounts } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import {
  isJobDone,
  isWatchDone,
  renderJob,
  renderJobBar,
  renderJobLine,
  renderJobList,
} from '../../src/core/jobs-render.js';
import type { JobRecord } from '../../src/ports/jobs.js';

const zero: JobExecutionCounts = {
  queued: 0,
  inProgress: 0,
  succeeded: 0,
  failed: 0,
  rejected: 0,
  timedOut: 0,
  canceled: 0,
  removed: 0,
};
const job = (over: Omit<Partial<JobRecord>, 'counts'> & { counts?: Partial<JobExecutionCounts> } = {}): JobRecord => ({
  jobId: 'job-1',
  status: 'IN_PROGRESS',
  targetSelection: 'SNAPSHOT',
  targets: ['arn:aws:iot:us-east-1:123456789012:thinggroup/lab', 'arn:aws:iot:us-east-1:123456789012:thing/pi-1'],
  ...over,
  counts: { ...zero, ...over.counts },
});

describe('jobs render', () => {
  it.each([
    ['IN_PROGRESS', false],
    ['SCHEDULED', false],
    ['COMPLETED', true],
    ['CANCELED', true],
    ['DELETION_IN_PROGRESS', true],
  ] as const)('a %s job is done: %s', (status, done) => expect(isJobDone({ status })).toBe(done));

  it.each<[string, Partial<JobRecord>, Partial<JobExecutionCounts>, boolean]>([
    ['a SNAPSHOT job in progress with nothing pending', { targetSelection: 'SNAPSHOT' }, { succeeded: 2 }, false],
    [
      'a CONTINUOUS job whose executions all finished',
      { targetSelection: 'CONTINUOUS' },
      { succeeded: 2, failed: 1 },
      true,
    ],
    ['a CONTINUOUS job with one still queued', { targetSelection: 'CONTINUOUS' }, { succeeded: 2, queued: 1 }, false],
    ['a CONTINUOUS job with no execution yet', { targetSelection: 'CONTINUOUS' }, {}, false],
    ['a canceled job', { status: 'CANCELED' }, { queued: 3 }, true],
  ])('a watch stops on %s', (_label, over, counts, done) => {
    expect(isWatchDone(job({ ...over, counts }))).toBe(done);
  });

  it('draws finished over all executions, failures summed, in progress and queued', () => {
    const j = job({ counts: { succeeded: 50, failed: 1, rejected: 1, inProgress: 3, queued: 49 } });
    expect(renderJobBar(j, 10)).toBe('job-1 [#####-----]  52/104  succeeded 50  failed 2  in progress 3  queued 49');
  });

  it('ends the bar with the final status, full when every execution finished', () => {
    const j = job({ status: 'COMPLETED', counts: { succeeded: 4 } });
    expect(renderJobBar(j, 4)).toBe('job-1 [####] 4/4  succeeded 4  in progress 0  queued 0  COMPLETED');
  });

  it('describes a job: status, targets by name, reason, every count, and the executions', () => {
    const j = job({
      status: 'CANCELED',
      forceCanceled: true,
      reasonCode: 'FAILURE_THRESHOLD',
      comment: 'too many failures',
      createdAt: new Date('2026-12-03T10:00:00Z'),
      counts: { succeeded: 8, failed: 2, canceled: 5 },
    });
    expect(
      renderJob(j, [
        { thingName: 'pi-1', status: 'SUCCEEDED', executionNumber: 1 },
        { thingName: 'pi-2', status: 'FAILED', executionNumber: 3 },
      ]).split('\n'),
    ).toEqual([
      'job job-1: CANCELED (SNAPSHOT), force-canceled',
      'targets: group lab, pi-1',
      'created: 2026-12-03T10:00:00.000Z',
      'reason: FAILURE_THRESHOLD: too many failures',
      'executions (15): succeeded 8, failed 2, rejected 0, timed out 0, in progress 0, queued 0, canceled 5, removed 0',
      '  pi-1  SUCCEEDED',
      '  pi-2  FAILED (attempt 3)',
    ]);
    expect(renderJobLine(j)).toBe(
      'job-1 CANCELED: succeeded 8, failed 2, rejected 0, timed out 0, in progress 0, queued 0, canceled 5, removed 0',
    );
  });

  it('lists jobs in aligned columns', () => {
    expect(
      renderJobList([
        { jobId: 'a', status: 'COMPLETED', targetSelection: 'SNAPSHOT', createdAt: new Date('2026-01-01T00:00:00Z') },
        { jobId: 'longer-id', status: 'IN_PROGRESS', targetSelection: 'CONTINUOUS' },
      ]).split('\n'),
    ).toEqual(['a          COMPLETED    SNAPSHOT    2026-01-01T00:00:00.000Z', 'longer-id  IN_PROGRESS  CONTINUOUS']);
    expect(renderJobList([])).toBe('no jobs');
  });
});
