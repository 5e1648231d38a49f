import { describe, expect, it } from 'vitest';
import {
  DEVICE_SETTABLE_STATUSES,
  isJobExecutionStatus,
  JOB_EXECUTION_STATUSES,
  TERMINAL_EXECUTION_STATUSES,
} from '../src/jobs.js';

describe('jobs vocabulary', () => {
  it.each([
    ['QUEUED', true],
    ['CANCELED', true],
    ['TIMED_OUT', true],
    ['queued', false],
    ['CANCELLED', false],
    ['', false],
    [undefined, false],
    [3, false],
  ])('isJobExecutionStatus(%j) is %s', (v, expected) => {
    expect(isJobExecutionStatus(v)).toBe(expected);
  });

  it('has every status except the two pending ones as terminal', () => {
    expect(JOB_EXECUTION_STATUSES.filter((s) => !TERMINAL_EXECUTION_STATUSES.has(s))).toEqual([
      'QUEUED',
      'IN_PROGRESS',
    ]);
  });

  it('lets a device set IN_PROGRESS and three terminal statuses, never TIMED_OUT, REMOVED or CANCELED', () => {
    expect(DEVICE_SETTABLE_STATUSES.filter((s) => TERMINAL_EXECUTION_STATUSES.has(s))).toEqual([
      'SUCCEEDED',
      'FAILED',
      'REJECTED',
    ]);
  });
});
