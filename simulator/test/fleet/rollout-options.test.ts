import { describe, expect, it } from 'vitest';
import { checkOptions, FLEET_DEFAULTS, type FleetJobOptions, JOB_DEFAULTS } from '../../src/fleet/options.js';
import { sim } from '../helpers.js';

const withJob = (job: Partial<FleetJobOptions>, more: Partial<Parameters<typeof checkOptions>[0]> = {}) =>
  checkOptions({ ...FLEET_DEFAULTS, job: { ...JOB_DEFAULTS, job: 'agent-update', ...job }, ...more });

describe('fleet --job options', () => {
  it('IoT ranges and sane plans pass', () => {
    expect(
      withJob({
        rolloutPerMinute: 1000,
        abortFailurePercent: 10.5,
        abortMinExecuted: 50,
        failPercent: 10,
        crashPercent: 5,
        corruptPercent: 1,
      }),
    ).toEqual([]);
  });

  it.each([
    [{ rolloutPerMinute: 0 }, '--rollout-per-minute must be an integer in [1, 1000]'],
    [{ rolloutPerMinute: 1001 }, '--rollout-per-minute must be an integer in [1, 1000]'],
    [{ rolloutPerMinute: 2.5 }, '--rollout-per-minute must be an integer in [1, 1000]'],
    [{ abortFailurePercent: 101 }, '--abort-failure-percent must be a percentage in [0, 100]'],
    [{ abortFailurePercent: 10.999 }, '--abort-failure-percent takes at most two digits after the decimal point'],
    [{ abortMinExecuted: 5 }, '--abort-min-executed needs --abort-failure-percent'],
    [{ abortFailurePercent: 10, abortMinExecuted: 0 }, '--abort-min-executed must be an integer ≥ 1'],
    [{ failPercent: -1 }, '--fail-percent must be a percentage in [0, 100]'],
    [{ failPercent: 60, crashPercent: 30, corruptPercent: 20 }, 'must not exceed 100'],
    [{ healthDeadlineMs: 50 }, '--health-deadline-ms must be an integer ≥ 100'],
    [{ installMs: -1 }, '--install-ms must be an integer ≥ 0'],
    [{ timeoutS: 0 }, '--job-timeout must be > 0'],
  ])('%j is refused: %s', (job, message) => {
    expect(withJob(job).join('\n')).toContain(message);
  });

  it.each([
    [{ target: 'aws', region: 'eu-west-1', apiUrl: 'https://x' }, '--job needs --target local or external'],
    [{ faults: [{ kind: 'restart-core' as const }] }, '--job and --fault do not combine'],
    [{ baseline: true }, '--job and --baseline do not combine'],
  ])('with %j: %s', (more, message) => {
    expect(withJob({}, more).join('\n')).toContain(message);
  });

  it('the CLI refuses bad job flags with exit 64 before it starts anything', async () => {
    const r = await sim([
      'fleet',
      '--job',
      'agent-update',
      '--rollout-per-minute',
      '0',
      '--abort-failure-percent',
      '150',
    ]);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--rollout-per-minute must be an integer in [1, 1000]');
    expect(r.stderr).toContain('--abort-failure-percent must be a percentage in [0, 100]');
  });

  it('the CLI refuses a job file it cannot read with exit 64', async () => {
    const r = await sim(['fleet', '--devices', '1', '--job', '/nonexistent/job.json', '--out', '/nonexistent/out']);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('not a readable file (ENOENT)');
  });
});
