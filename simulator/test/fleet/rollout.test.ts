import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FLEET_DEFAULTS, type FleetJobOptions, type FleetOptions, JOB_DEFAULTS } from '../../src/fleet/options.js';
import { createFleetRunner, type FleetResult } from '../../src/fleet/runner.js';
import { writeReport } from '../../src/report/report.js';

/**
 * Rollouts over real fleets: real agents (mqtt.js over mutual TLS, their real job runner) with the
 * simulated updater, against the in-process local IoT Core; the job is created and followed with
 * the real @aws-sdk/client-iot (CreateJob, DescribeJob, ListJobExecutionsForJob).
 */
const out = mkdtempSync(path.join(os.tmpdir(), 'fleet-rollout-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** A small fleet; a new agent has 10 s to prove healthy (~1–2 s here when the machine is quiet, several when it is shared). */
const fleet = (devices: number, job: Partial<FleetJobOptions>): FleetOptions => ({
  ...FLEET_DEFAULTS,
  devices,
  rampPerSecond: 200,
  durationS: 1,
  intervalMs: 200,
  batchReadings: 5,
  batchAgeMs: 1_000,
  transport: 'mqtt',
  outDir: out,
  latencyThings: 0,
  drainTimeoutS: 30,
  reconnectMaxMs: 2_000,
  job: { ...JOB_DEFAULTS, job: 'agent-update', healthDeadlineMs: 10_000, installMs: 200, timeoutS: 150, ...job },
});

const rolloutOf = (r: FleetResult) => {
  const p = r.phases[0];
  if (!p?.rollout) throw new Error('no rollout in the result');
  return { phase: p, rollout: p.rollout };
};

describe('fleet --job against the in-process local IoT Core', () => {
  it('an agent update over 10 devices: one unhealthy (rolled back), one power cut (resumed), one corrupt (rejected)', async () => {
    const r = await createFleetRunner({
      options: fleet(10, { failPercent: 10, crashPercent: 10, corruptPercent: 10 }),
    }).run();
    const { phase, rollout } = rolloutOf(r);
    expect(rollout.ended).toBe('completed');
    expect(rollout.status).toBe('COMPLETED');
    expect(rollout.plannedFaults).toEqual({ unhealthy: 1, crashInstall: 1, corrupt: 1 });
    expect(rollout.counts).toMatchObject({ succeeded: 8, failed: 1, rejected: 1, queued: 0, inProgress: 0 });
    expect(rollout.executionStatuses).toEqual({ SUCCEEDED: 8, FAILED: 1, REJECTED: 1 });
    expect(rollout.devices).toMatchObject({
      total: 10,
      versions: { '1.1.0': 8, '1.0.0': 2 },
      withoutWorkingVersion: 0,
    });
    // 8 switches, 1 rollback, 1 power cut: each a new agent process.
    expect(rollout.devices.restarts).toBe(8 + 1 + 1 + 1);
    expect(rollout.executed).toBe(10);
    expect(rollout.series.length).toBeGreaterThan(0);
    // Telemetry went on through the restarts: nothing lost.
    expect(phase.telemetry.lost).toBe(0);
    const files = await writeReport(r, out);
    expect(readFileSync(files.html, 'utf8')).toContain('job executions by status');
  }, 180_000);

  it('aws-crt devices (the device SDK IotJobsClientv2, as on a Pi): 4 devices, one release unhealthy', async () => {
    // The device SDK's clients connect and subscribe more slowly than mqtt.js: a deadline to match.
    const r = await createFleetRunner({
      options: { ...fleet(4, { failPercent: 25, healthDeadlineMs: 15_000 }), transport: 'crt' },
    }).run();
    const { phase, rollout } = rolloutOf(r);
    expect(phase.deviceHosts.transport).toBe('crt');
    expect(rollout).toMatchObject({ ended: 'completed', executionStatuses: { SUCCEEDED: 3, FAILED: 1 } });
    expect(rollout.devices).toMatchObject({
      versions: { '1.1.0': 3, '1.0.0': 1 },
      withoutWorkingVersion: 0,
      restarts: 5,
    });
    expect(phase.telemetry.lost).toBe(0);
  }, 180_000);

  it.each([
    // A reboot: the device restarts its agent under a new kernel boot id; the resumed job sees
    // the boot id changed and SUCCEEDS.
    ['reboot', { SUCCEEDED: 4 }, 4],
    // The batch age the fleet already runs with: applied through the shadow's rules, nothing restarts.
    ['config', { SUCCEEDED: 4 }, 0],
  ] as const)(
    '--job %s over 4 devices',
    async (job, statuses, restarts) => {
      const r = await createFleetRunner({ options: fleet(4, { job }) }).run();
      const { phase, rollout } = rolloutOf(r);
      expect(rollout).toMatchObject({ ended: 'completed', kind: job, executionStatuses: statuses, executed: 4 });
      expect(rollout.devices).toMatchObject({ versions: { '1.0.0': 4 }, withoutWorkingVersion: 0, restarts });
      expect(phase.telemetry.lost).toBe(0);
    },
    180_000,
  );

  it('a job document file the agents refuse: every execution REJECTED, nothing changes', async () => {
    const file = path.join(out, 'unknown-operation.json');
    writeFileSync(file, JSON.stringify({ operation: 'acme.firmware-flash', image: 'https://example.com/fw.bin' }));
    const r = await createFleetRunner({ options: fleet(3, { job: file }) }).run();
    const { rollout } = rolloutOf(r);
    expect(rollout).toMatchObject({ kind: 'file', ended: 'completed', executionStatuses: { REJECTED: 3 } });
    expect(rollout.devices).toMatchObject({ versions: { '1.0.0': 3 }, restarts: 0 });
  }, 180_000);

  it('200 devices, 10 % fail the health check: the abort criterion cancels the job after the first wave; every device runs a working version', async () => {
    // 50 things per rollout minute, so the first wave is the 50 things notified at once (the next
    // minute is 60 s away). The abort is evaluated once 50 have executed: the wave holds every
    // 10th device, 5 unhealthy ones, so ALL failures are 5 of 50 = 10 % ≥ 10 %: the job is
    // canceled then, its 150 QUEUED executions with it, none of them ever started.
    const started = Date.now();
    // IoT Core's account quotas are lifted (`--limits off`): a wave of 50 agents restarting at
    // once re-subscribes ~600 topics, 3 s of the account's 200 SUBSCRIBEs per second, and an
    // agent whose shadow or jobs subscription was throttled waits for its next connect to try
    // again, so a healthy release could miss its deadline by the quota's luck. This test is
    // about the abort rule; the quota's effect on a rollout is measured in the README.
    const r = await createFleetRunner({
      options: {
        ...fleet(200, {
          failPercent: 10,
          rolloutPerMinute: 50,
          abortFailurePercent: 10,
          abortMinExecuted: 50,
          // Generous: 50 agents restart at once on a shared machine; a healthy one must never miss it.
          healthDeadlineMs: 20_000,
        }),
        limits: 'off',
      },
    }).run();
    const { phase, rollout } = rolloutOf(r);
    expect(rollout.plannedFaults).toEqual({ unhealthy: 20, crashInstall: 0, corrupt: 0 });
    expect(rollout.ended).toBe('canceled');
    expect(rollout.status).toBe('CANCELED');
    expect(rollout.abort).toEqual({ failurePercent: 10, minExecuted: 50 });
    expect(rollout.counts).toEqual({
      queued: 0,
      inProgress: 0,
      succeeded: 45,
      failed: 5,
      rejected: 0,
      timedOut: 0,
      canceled: 150,
      removed: 0,
    });
    expect(rollout.executionStatuses).toEqual({ SUCCEEDED: 45, FAILED: 5, CANCELED: 150 });
    expect(rollout.executed).toBe(50);
    expect(rollout.comment).toMatch(/10%/);
    // The 45 updated, the 5 rolled back and the 150 never reached all run a working version.
    expect(rollout.devices).toMatchObject({
      total: 200,
      versions: { '1.1.0': 45, '1.0.0': 155 },
      withoutWorkingVersion: 0,
    });
    // 45 switches + 5 switches and 5 rollbacks.
    expect(rollout.devices.restarts).toBe(55);
    // The rate was honoured: at no poll had more than one minute's 50 executions left QUEUED.
    for (const p of rollout.series) expect(p.inProgress + p.succeeded + p.failed + p.rejected).toBeLessThanOrEqual(50);
    const last = rollout.series.at(-1);
    expect(last).toMatchObject({ succeeded: 45, failed: 5, canceled: 150 });
    expect(phase.telemetry.lost).toBe(0);
    expect(r.cleanup.failed).toBe(0);
    // ~40 s on a quiet machine (2 vCPUs); the bound leaves room for a shared one.
    expect(Date.now() - started).toBeLessThan(150_000);
  }, 240_000);
});
