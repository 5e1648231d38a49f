import { generateKeyPairSync } from 'node:crypto';
import { createVirtualClock } from '@pifleet/device-agent';
import { parseJobDocument } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { releaseFaultPlan } from '../../src/jobs/fault-plan.js';
import { simulatedJob } from '../../src/jobs/job-document.js';
import {
  createSimulatedUpdater,
  type ReleaseFault,
  type RestartReason,
  versionFaults,
} from '../../src/jobs/simulated-updater.js';

/**
 * The simulated updater on a virtual clock, driven as the agent's update handler drives it:
 * install → (restart) → onStart → confirmHealthy, or the deadline's rollback → (restart) → onStart.
 */
function updateJob(version = '1.1.0') {
  const job = simulatedJob({ job: 'agent-update', version, batchAgeMs: 1_000 });
  const parsed = parseJobDocument(job.document);
  if (!parsed.ok || parsed.document.operation !== 'pifleet.agent-update') throw new Error('not an update document');
  return { document: parsed.document, publicKeys: job.publicKeys };
}

function device(faults: readonly ReleaseFault[], publicKeys: readonly string[]) {
  const clock = createVirtualClock();
  const restarts: RestartReason[] = [];
  const steps: string[] = [];
  const updater = createSimulatedUpdater({
    initialVersion: '1.0.0',
    publicKeys,
    faults: new Set(faults),
    clock,
    healthDeadlineMs: 5_000,
    installMs: 1_000,
    restart: (reason) => restarts.push(reason),
  });
  const progress = async (step: string) => {
    steps.push(step);
  };
  return { clock, restarts, steps, updater, progress };
}

/** Runs an install to its end on the virtual clock (the install waits its simulated download). */
async function install(
  d: ReturnType<typeof device>,
  jobId: string,
  document: ReturnType<typeof updateJob>['document'],
) {
  const done = d.updater.install({ jobId, document }, d.progress);
  await d.clock.advance(1_000);
  return done;
}

describe('simulated updater', () => {
  it('a good release: switch, restart, confirmed healthy, the device runs it', async () => {
    const { document, publicKeys } = updateJob();
    const d = device([], publicKeys);
    expect(await install(d, 'job-1', document)).toEqual({ status: 'RESTARTING', step: 'restart' });
    expect(d.steps).toEqual(['download', 'unpack', 'switch']);
    expect(d.restarts).toEqual(['switched']);
    expect(d.updater.running).toEqual({ version: '1.1.0', working: true });
    // The new agent process starts and resumes the job.
    expect(await d.updater.onStart('job-1')).toEqual({ state: 'awaiting-health', step: 'health' });
    expect(await d.updater.confirmHealthy('job-1')).toMatchObject({ status: 'SUCCEEDED', step: 'health' });
    // The deadline is disarmed: nothing rolls the confirmed release back.
    await d.clock.advance(10_000);
    expect(d.updater.running).toEqual({ version: '1.1.0', working: true });
    expect(d.restarts).toEqual(['switched']);
    expect(d.updater.counts).toMatchObject({ succeeded: 1, rolledBack: 0 });
  });

  it('a release that fails its health check: rolled back at the deadline, restarted, FAILED, on the old version', async () => {
    const { document, publicKeys } = updateJob();
    const d = device(['unhealthy'], publicKeys);
    await install(d, 'job-1', document);
    expect(d.updater.running).toEqual({ version: '1.1.0', working: false });
    expect(await d.updater.onStart('job-1')).toEqual({ state: 'awaiting-health', step: 'health' });
    let confirmed = false;
    void d.updater.confirmHealthy('job-1').then(() => {
      confirmed = true;
    });
    await d.clock.advance(4_999);
    expect(d.restarts).toEqual(['switched']);
    await d.clock.advance(1);
    expect(d.restarts).toEqual(['switched', 'rolled-back']);
    expect(confirmed).toBe(false);
    expect(d.updater.running).toEqual({ version: '1.0.0', working: true });
    const resumed = await d.updater.onStart('job-1');
    expect(resumed).toEqual({
      state: 'ended',
      result: { status: 'FAILED', step: 'health', detail: expect.stringContaining('rolled back to 1.0.0') },
    });
    // A read: the agent's start and the resumed handler both ask, and both hear the rollback.
    expect(await d.updater.onStart('job-1')).toEqual(resumed);
    expect(await d.updater.onStart('job-2')).toEqual({ state: 'none' });
  });

  it('healthy only after the deadline: the rollback stands, confirming does not report a second outcome', async () => {
    const { document, publicKeys } = updateJob();
    const d = device([], publicKeys);
    await install(d, 'job-1', document);
    expect(await d.updater.onStart('job-1')).toMatchObject({ state: 'awaiting-health' });
    // The new agent is slow to connect (a starved machine): the deadline passes first.
    await d.clock.advance(5_000);
    expect(d.restarts).toEqual(['switched', 'rolled-back']);
    let confirmed = false;
    void d.updater.confirmHealthy('job-1').then(() => {
      confirmed = true;
    });
    await d.clock.advance(1_000);
    expect(confirmed).toBe(false);
    expect(d.updater.running).toEqual({ version: '1.0.0', working: true });
    expect(await d.updater.onStart('job-1')).toMatchObject({ state: 'ended', result: { status: 'FAILED' } });
  });

  it('a corrupt download is REJECTED against the signed SHA-256; the device stays on its version', async () => {
    const { document, publicKeys } = updateJob();
    const d = device(['corrupt'], publicKeys);
    const r = await install(d, 'job-1', document);
    expect(r).toMatchObject({ status: 'REJECTED', step: 'download', detail: expect.stringContaining('SHA-256') });
    expect(d.restarts).toEqual([]);
    expect(d.updater.running).toEqual({ version: '1.0.0', working: true });
  });

  it('a release signed by a key the device does not trust is REJECTED before any download', async () => {
    const { document } = updateJob();
    const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const d = device([], [other]);
    const r = await d.updater.install({ jobId: 'job-1', document }, d.progress);
    expect(r).toMatchObject({ status: 'REJECTED', step: 'verify', detail: expect.stringContaining('does not trust') });
    expect(d.steps).toEqual([]);
  });

  it('a power cut mid-install: the process ends, the next one starts the install over and completes it', async () => {
    const { document, publicKeys } = updateJob();
    const d = device(['crash-install'], publicKeys);
    const first = d.updater.install({ jobId: 'job-1', document }, d.progress);
    await d.clock.advance(500);
    expect(await first).toEqual({ status: 'RESTARTING', step: 'download' });
    expect(d.restarts).toEqual(['power-cut']);
    expect(d.updater.running.version).toBe('1.0.0');
    // The resumed handler asks the updater, which knows the install never switched: start over.
    expect(await d.updater.onStart('job-1')).toEqual({ state: 'none' });
    expect(await install(d, 'job-1', document)).toEqual({ status: 'RESTARTING', step: 'restart' });
    expect(d.restarts).toEqual(['power-cut', 'switched']);
    expect(d.updater.counts.powerCuts).toBe(1);
    expect(await d.updater.onStart('job-1')).toMatchObject({ state: 'awaiting-health' });
    expect(await d.updater.confirmHealthy('job-1')).toMatchObject({ status: 'SUCCEEDED' });
  });

  it.each([
    ['2.0.0-sim-unhealthy', ['unhealthy']],
    ['2.0.0-rc.1.sim-corrupt.sim-crash-install', ['crash-install', 'corrupt']],
    ['2.0.0', []],
    ['2.0.0+sim-unhealthy', []],
    ['not-a-version-sim-unhealthy', []],
  ])('faults a release version carries: %s', (version, faults) => {
    expect(versionFaults(version)).toEqual(faults);
  });

  it('a release whose version says unhealthy fails on a device with no fault of its own', async () => {
    const { document, publicKeys } = updateJob('2.0.0-sim-unhealthy');
    const d = device([], publicKeys);
    await install(d, 'job-1', document);
    expect(d.updater.running).toEqual({ version: '2.0.0-sim-unhealthy', working: false });
    await d.clock.advance(5_000);
    expect(d.updater.running).toEqual({ version: '1.0.0', working: true });
  });
});

describe('release fault plan', () => {
  it('10 % of 200 devices: every 10th device, 5 in each 50', () => {
    const plan = releaseFaultPlan(200, { failPercent: 10, crashPercent: 0, corruptPercent: 0 });
    const failing = plan.flatMap((f, i) => (f.includes('unhealthy') ? [i] : []));
    expect(failing).toHaveLength(20);
    expect(failing.slice(0, 5)).toEqual([9, 19, 29, 39, 49]);
    for (let w = 0; w < 4; w += 1) expect(failing.filter((i) => i >= w * 50 && i < (w + 1) * 50)).toHaveLength(5);
  });

  it('faults never overlap and each gets its rounded share', () => {
    const plan = releaseFaultPlan(33, { failPercent: 10, crashPercent: 20, corruptPercent: 5 });
    expect(plan.filter((f) => f.includes('unhealthy'))).toHaveLength(3);
    expect(plan.filter((f) => f.includes('crash-install'))).toHaveLength(7);
    expect(plan.filter((f) => f.includes('corrupt'))).toHaveLength(2);
    expect(plan.every((f) => f.length <= 1)).toBe(true);
  });

  it('no percent, no faults', () => {
    expect(releaseFaultPlan(10, { failPercent: 0, crashPercent: 0, corruptPercent: 0 }).flat()).toEqual([]);
  });
});
