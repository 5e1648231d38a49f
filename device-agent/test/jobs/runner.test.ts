import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  agentUpdateDocument,
  configDocument,
  type DesiredState,
  JOB_OPERATIONS,
  rebootDocument,
} from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../../src/app/agent.js';
import { createConfigHandler } from '../../src/jobs/config-job.js';
import type { JobHandlers } from '../../src/jobs/handler.js';
import { createRebootHandler, type RebootPort } from '../../src/jobs/reboot.js';
import { createJobRunner } from '../../src/jobs/runner.js';
import { createFileJobState, createMemoryJobState, type JobStateStore } from '../../src/jobs/state.js';
import { type AgentUpdater, createUpdateHandler, type UpdaterResume } from '../../src/jobs/update-job.js';
import { createSettingsOverlay } from '../../src/jobs/wiring.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import { createVirtualClock, type VirtualClock } from '../../src/testing/virtual-clock.js';
import { agentConfig, countingSensor, MemoryShadow, MemoryTransport, memoryOutput } from '../app/fakes.js';
import { MemoryConnection, MemoryJobs } from './memory-jobs.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'pifleet-jobs-'));
  dirs.push(d);
  return d;
};

async function startedAgent(clock: VirtualClock): Promise<{ agent: Agent; shadow: MemoryShadow }> {
  const transport = new MemoryTransport();
  const shadow = new MemoryShadow();
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
  const agent = createAgent({
    config: agentConfig({
      sensors: [{ id: 'env', driver: 'bme280', intervalMs: 1000 }],
      outputs: [{ id: 'relay', driver: 'digital-output', line: 17 }],
    }),
    transport,
    outbox,
    sensors: [countingSensor('env')],
    outputs: [memoryOutput('relay')],
    clock,
    createShadow: () => shadow,
  });
  await agent.start();
  await agent.syncShadow();
  return { agent, shadow };
}

function fakeReboot(bootId = 'boot-a'): RebootPort & { reboots: number; current: string } {
  return {
    reboots: 0,
    current: bootId,
    async reboot() {
      this.reboots += 1;
    },
    bootId() {
      return this.current;
    },
  };
}

interface Setup {
  readonly clock: VirtualClock;
  readonly jobs: MemoryJobs;
  readonly connection: MemoryConnection;
  readonly store: JobStateStore;
  readonly overlay: ReturnType<typeof createSettingsOverlay>;
  readonly reboot: ReturnType<typeof fakeReboot>;
  readonly agent: Agent;
  readonly shadow: MemoryShadow;
  readonly runs: Record<string, number>;
  runner(extra?: Partial<JobHandlers>): ReturnType<typeof createJobRunner>;
}

async function setup(
  opts: {
    allowReboot?: boolean;
    store?: JobStateStore;
    jobs?: MemoryJobs;
    updater?: AgentUpdater;
    keys?: string[];
  } = {},
): Promise<Setup> {
  const clock = createVirtualClock({ start: 1_700_000_000_000 });
  const jobs = opts.jobs ?? new MemoryJobs();
  const connection = new MemoryConnection();
  const store = opts.store ?? createMemoryJobState();
  const overlay = createSettingsOverlay({ file: undefined });
  const reboot = fakeReboot();
  const { agent, shadow } = await startedAgent(clock);
  const runs: Record<string, number> = {};
  const counted = <D>(name: string, h: { run(ctx: D): Promise<never> | Promise<unknown> }) => ({
    run(ctx: D) {
      runs[name] = (runs[name] ?? 0) + 1;
      return h.run(ctx);
    },
  });
  const base: JobHandlers = {
    'pifleet.config': createConfigHandler({ target: agent, overlay }),
    'pifleet.reboot': createRebootHandler({ allowReboot: opts.allowReboot ?? false, port: reboot }),
    'pifleet.agent-update': createUpdateHandler({
      ...(opts.updater ? { updater: opts.updater } : {}),
      publicKeys: opts.keys ?? [],
      healthy: () => agent.whenHealthy(),
    }),
  };
  return {
    clock,
    jobs,
    connection,
    store,
    overlay,
    reboot,
    agent,
    shadow,
    runs,
    runner(extra = {}) {
      const handlers = { ...base, ...extra } as JobHandlers;
      return createJobRunner({
        service: () => jobs,
        connection,
        store,
        clock,
        random: () => 0.5,
        handlers: {
          'pifleet.config': counted('config', handlers['pifleet.config']),
          'pifleet.reboot': counted('reboot', handlers['pifleet.reboot']),
          'pifleet.agent-update': counted('update', handlers['pifleet.agent-update']),
        } as JobHandlers,
      });
    },
  };
}

describe('job runner: config jobs', () => {
  it('applies a valid config, keeps it in the overlay and SUCCEEDS naming what changed', async () => {
    const s = await setup();
    s.jobs.queue('cfg-1', configDocument({ sampling: { env: 5000 }, logLevel: 'debug', outputs: { relay: true } }));
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(s.jobs.get('cfg-1').status).toBe('SUCCEEDED');
    expect(s.jobs.get('cfg-1').statusDetails).toEqual({
      operation: 'pifleet.config',
      step: 'applied',
      detail: 'settings applied and kept',
      changed: 'sampling.env, outputs.relay, logLevel',
    });
    expect(s.agent.status().actual).toMatchObject({
      sampling: { env: 5000 },
      outputs: { relay: true },
      logLevel: 'debug',
    });
    expect(s.overlay.read()).toEqual({ sampling: { env: 5000 }, outputs: { relay: true }, logLevel: 'debug' });
    // The shadow is told what the device now runs with.
    expect(s.shadow.updates.at(-1)).toMatchObject({ logLevel: 'debug', sampling: { env: 5000 } });
    expect(s.store.load()).toBeUndefined();
    expect(s.jobs.terminal('cfg-1')).toHaveLength(1);
    runner.stop();
  });

  it('REJECTS a config with invalid keys, naming every one, and applies nothing', async () => {
    const s = await setup();
    s.jobs.queue(
      'cfg-bad',
      configDocument({
        sampling: { env: 5, ghost: 1000 },
        outputs: { relay: 'on' },
        logLevel: 'debug',
        colour: 'red',
        __proto__: { polluted: true },
      } as Record<string, unknown>),
    );
    const runner = s.runner();
    runner.start();
    await runner.settled();
    const e = s.jobs.get('cfg-bad');
    expect(e.status).toBe('REJECTED');
    expect(e.statusDetails?.rejected?.split(', ').sort()).toEqual(
      ['colour', 'outputs.relay', 'sampling.env', 'sampling.ghost'].sort(),
    );
    expect(e.statusDetails?.detail).toMatch(/^invalid settings, nothing applied: /);
    expect(e.statusDetails?.detail).toContain('sampling.env: sampling interval (ms) must be at least 100');
    // logLevel was valid, but a job is one change: nothing of it applied.
    expect(s.agent.status().actual.logLevel).toBe('info');
    expect(s.overlay.read()).toEqual({});
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    runner.stop();
  });
});

describe('job runner: reboot jobs', () => {
  it('REJECTS a reboot when the config does not allow it', async () => {
    const s = await setup({ allowReboot: false });
    s.jobs.queue('rb-1', rebootDocument('stuck bus'));
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(s.jobs.get('rb-1')).toMatchObject({
      status: 'REJECTED',
      statusDetails: { detail: expect.stringContaining('jobs.allowReboot') },
    });
    expect(s.reboot.reboots).toBe(0);
    runner.stop();
  });

  it('reports rebooting, reboots, and SUCCEEDS after the restart on a new boot', async () => {
    const s = await setup({ allowReboot: true });
    s.jobs.queue('rb-2', rebootDocument());
    const first = s.runner();
    first.start();
    await first.settled();
    expect(s.reboot.reboots).toBe(1);
    expect(s.jobs.get('rb-2')).toMatchObject({ status: 'IN_PROGRESS', statusDetails: { step: 'rebooting' } });
    expect(s.store.load()).toMatchObject({ jobId: 'rb-2', step: 'rebooting', data: { bootId: 'boot-a' } });
    first.stop();

    // The device comes back: another boot, another agent process, the same state directory.
    s.reboot.current = 'boot-b';
    s.jobs.closed = false;
    const second = s.runner();
    second.start();
    await second.settled();
    expect(s.reboot.reboots).toBe(1);
    expect(s.jobs.get('rb-2')).toMatchObject({ status: 'SUCCEEDED', statusDetails: { step: 'rebooted' } });
    expect(s.jobs.terminal('rb-2')).toHaveLength(1);
    expect(s.store.load()).toBeUndefined();
    second.stop();
  });

  it('asks nothing more once a reboot is under way, even on a notify-next or a reconnect', async () => {
    const s = await setup({ allowReboot: true });
    s.jobs.queue('rb-wait', rebootDocument());
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(s.reboot.reboots).toBe(1);
    const calls = s.jobs.calls.length;
    s.jobs.queue('rb-next', configDocument({ logLevel: 'debug' }));
    runner.kick('notify-next');
    s.connection.connect();
    await runner.settled();
    expect(s.jobs.calls.length).toBe(calls);
    expect(s.jobs.get('rb-wait')).toMatchObject({ status: 'IN_PROGRESS', statusDetails: { step: 'rebooting' } });
    runner.stop();
  });

  it('FAILS a reboot job resumed on the same boot instead of rebooting again', async () => {
    const s = await setup({ allowReboot: true });
    s.jobs.queue('rb-3', rebootDocument());
    const first = s.runner();
    first.start();
    await first.settled();
    first.stop();
    s.jobs.closed = false;
    const second = s.runner();
    second.start();
    await second.settled();
    expect(s.reboot.reboots).toBe(1);
    expect(s.jobs.get('rb-3')).toMatchObject({
      status: 'FAILED',
      statusDetails: { detail: expect.stringContaining('did not reboot') },
    });
    second.stop();
  });
});

describe('job runner: documents', () => {
  it.each([
    ['an unknown operation', { operation: 'firmware.flash' }, 'unknown operation "firmware.flash"'],
    ['a __proto__ key', JSON.parse('{"operation":"pifleet.reboot","__proto__":{"polluted":true}}'), 'Unrecognized key'],
    ['a deep document', { operation: JOB_OPERATIONS.config, config: deep(100) }, 'levels deep'],
    ['a huge document', configDocument({ logLevel: 'x'.repeat(40_000) }), 'larger than 32768'],
    ['no document', undefined, 'the execution has no job document'],
  ])('REJECTS %s with the reason in statusDetails and runs nothing', async (_name, doc, reason) => {
    const s = await setup({ allowReboot: true });
    s.jobs.queue('doc-1', doc);
    const runner = s.runner();
    runner.start();
    await runner.settled();
    const e = s.jobs.get('doc-1');
    expect(e.status).toBe('REJECTED');
    expect(e.statusDetails?.step).toBe('validate');
    expect(e.statusDetails?.detail).toContain(reason);
    expect(s.runs).toEqual({});
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    runner.stop();
  });
});

function deep(levels: number): Record<string, unknown> {
  let d: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < levels; i += 1) d = { a: d };
  return d;
}

describe('job runner: exactly one terminal report', () => {
  it('runs jobs one at a time, in order, each on notify-next or after the previous one', async () => {
    const s = await setup();
    const runner = s.runner();
    runner.start();
    await runner.settled();
    s.jobs.queue('a', configDocument({ logLevel: 'debug' }));
    s.jobs.queue('b', configDocument({ logLevel: 'warn' }));
    await runner.settled();
    expect(s.jobs.accepted.map((u) => `${u.jobId}:${u.status}`)).toEqual(['a:SUCCEEDED', 'b:SUCCEEDED']);
    expect(s.agent.status().actual.logLevel).toBe('warn');
    runner.stop();
  });

  it('waits for a connection, then asks start-next on connect', async () => {
    const s = await setup();
    s.connection.drop();
    s.jobs.queue('offline', configDocument({ logLevel: 'debug' }));
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(s.jobs.calls).toEqual([]);
    s.connection.connect();
    await runner.settled();
    expect(s.jobs.get('offline').status).toBe('SUCCEEDED');
    runner.stop();
  });

  it('a terminal update whose answer was lost is reconciled by describe, not sent twice', async () => {
    const s = await setup();
    s.jobs.queue('lost', configDocument({ logLevel: 'debug' }));
    s.jobs.loseUpdateAnswers = 1;
    const runner = s.runner();
    runner.start();
    // The retry waits on the clock (backoff); drive it.
    while (s.jobs.get('lost').status !== 'SUCCEEDED' || s.store.load() !== undefined) await s.clock.next();
    await runner.settled();
    expect(s.jobs.terminal('lost')).toHaveLength(1);
    expect(s.jobs.calls).toEqual(['start-next', 'update', 'update', 'start-next']);
    runner.stop();
  });

  it('a VersionMismatch (the execution was updated elsewhere) reports with the current version', async () => {
    const s = await setup();
    s.jobs.queue('moved', configDocument({ logLevel: 'debug' }));
    const runner = s.runner({
      'pifleet.config': {
        async run() {
          s.jobs.touch('moved');
          return { status: 'SUCCEEDED', step: 'applied' };
        },
      },
    });
    runner.start();
    await runner.settled();
    expect(s.jobs.get('moved').status).toBe('SUCCEEDED');
    expect(s.jobs.terminal('moved')).toHaveLength(1);
    runner.stop();
  });

  it('an execution canceled while it runs keeps the service’s status, and the runner goes on', async () => {
    const s = await setup();
    s.jobs.queue('gone', configDocument({ logLevel: 'debug' }));
    s.jobs.queue('next', configDocument({ logLevel: 'warn' }));
    const runner = s.runner({
      'pifleet.config': {
        async run(ctx) {
          if (ctx.jobId === 'gone') s.jobs.cancel('gone');
          return { status: 'SUCCEEDED', step: 'applied' };
        },
      },
    });
    runner.start();
    await runner.settled();
    expect(s.jobs.get('gone').status).toBe('CANCELED');
    expect(s.jobs.terminal('gone')).toEqual([]);
    expect(s.jobs.get('next').status).toBe('SUCCEEDED');
    runner.stop();
  });

  it('a crash after the handler finished reports the persisted outcome after restart and does not run the job again', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'job-execution.json');
    const s = await setup({ store: createFileJobState({ file }) });
    s.jobs.queue('crash', configDocument({ logLevel: 'debug' }));
    // The connection drops for good just as the outcome is reported: the process then dies.
    s.jobs.failRequests = 0;
    const runner = s.runner({
      'pifleet.config': {
        async run() {
          s.connection.drop();
          s.jobs.failRequests = 1;
          return { status: 'SUCCEEDED', step: 'applied', changed: 'logLevel' };
        },
      },
    });
    runner.start();
    await s.clock.advance(5_000);
    runner.stop(); // the process is killed here
    await runner.settled();
    const persisted = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(persisted).toMatchObject({ jobId: 'crash', outcome: { status: 'SUCCEEDED' } });
    expect(s.jobs.get('crash').status).toBe('IN_PROGRESS');

    s.jobs.closed = false;
    s.connection.isConnected = true;
    const after = s.runner();
    after.start();
    await after.settled();
    expect(s.runs).toEqual({ config: 1 });
    expect(s.jobs.get('crash')).toMatchObject({ status: 'SUCCEEDED', statusDetails: { changed: 'logLevel' } });
    expect(s.jobs.terminal('crash')).toHaveLength(1);
    after.stop();
  });

  it('a crash mid-job resumes the same execution from the persisted step', async () => {
    const dir = tempDir();
    const store = createFileJobState({ file: path.join(dir, 'job-execution.json') });
    const s = await setup({ store });
    s.jobs.queue('mid', configDocument({ logLevel: 'debug' }));
    const steps: (string | undefined)[] = [];
    const handler: JobHandlers['pifleet.config'] = {
      async run(ctx) {
        steps.push(ctx.resumedStep);
        if (ctx.resumedStep === undefined) {
          await ctx.progress('half-way', { data: { token: 'kept' } });
          return { status: 'PENDING', step: 'half-way' }; // the process dies here
        }
        expect(ctx.data).toEqual({ token: 'kept' });
        return { status: 'SUCCEEDED', step: 'done' };
      },
    };
    const first = s.runner({ 'pifleet.config': handler });
    first.start();
    await first.settled();
    first.stop();
    expect(s.jobs.get('mid')).toMatchObject({ status: 'IN_PROGRESS', statusDetails: { step: 'half-way' } });
    s.jobs.closed = false;
    const second = s.runner({ 'pifleet.config': handler });
    second.start();
    await second.settled();
    expect(steps).toEqual([undefined, 'half-way']);
    expect(s.jobs.get('mid').status).toBe('SUCCEEDED');
    second.stop();
  });

  it('an unreadable state file is moved aside and the execution resumes from its statusDetails', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'job-execution.json');
    const reasons: string[] = [];
    const s = await setup({
      allowReboot: true,
      store: createFileJobState({ file, onCorrupt: (r) => reasons.push(r) }),
    });
    s.jobs.queue('rb', rebootDocument());
    const first = s.runner();
    first.start();
    await first.settled();
    first.stop();
    writeFileSync(file, '{"format":1,"jobId":');
    s.reboot.current = 'boot-b';
    s.jobs.closed = false;
    const second = s.runner();
    second.start();
    await second.settled();
    expect(reasons).toHaveLength(1);
    expect(readFileSync(`${file}.corrupt`, 'utf8')).toBe('{"format":1,"jobId":');
    // No boot id was kept, so the restart is taken as the reboot: resumed, not rebooted again.
    expect(s.reboot.reboots).toBe(1);
    expect(s.jobs.get('rb').status).toBe('SUCCEEDED');
    second.stop();
  });

  it('a persisted execution that is no longer pending (canceled while the device was down) is dropped', async () => {
    const store = createMemoryJobState({
      jobId: 'old',
      executionNumber: 1,
      operation: 'pifleet.reboot',
      step: 'rebooting',
      versionNumber: 3,
    });
    const s = await setup({ store });
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(store.load()).toBeUndefined();
    runner.stop();
  });

  it('backs off after a failed start-next instead of asking again on every reconnect', async () => {
    const s = await setup();
    s.jobs.failRequests = 1;
    const runner = s.runner();
    runner.start();
    await new Promise((r) => setImmediate(r));
    expect(s.jobs.calls).toEqual(['start-next']);
    s.jobs.queue('later', configDocument({ logLevel: 'debug' }));
    s.connection.connect();
    await new Promise((r) => setImmediate(r));
    expect(s.jobs.calls).toEqual(['start-next']);
    await s.clock.advance(500); // full jitter of 1 s at random 0.5
    await runner.settled();
    expect(s.jobs.get('later').status).toBe('SUCCEEDED');
    runner.stop();
  });
});

describe('job runner: a notification it could not receive', () => {
  it('asks start-next when the notify-next subscription is established late', async () => {
    const s = await setup();
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(s.jobs.calls).toEqual(['start-next']);
    // Queued while notify-next was not subscribed yet (throttled): no notification arrives.
    s.jobs.queue('missed', configDocument({ logLevel: 'debug' }), { notify: false });
    await runner.settled();
    expect(s.jobs.get('missed').status).toBe('QUEUED');
    s.jobs.restoreStream();
    await runner.settled();
    expect(s.jobs.get('missed').status).toBe('SUCCEEDED');
    runner.stop();
  });
});

describe('job runner: a failed start-next on a live connection', () => {
  it('is asked again after the backoff, with no reconnect or notification to wake it (an update awaiting its confirmation)', async () => {
    const s = await setup();
    // Queued before the runner listens: no notify-next will come for it.
    s.jobs.queue('held', configDocument({ logLevel: 'debug' }));
    s.jobs.failRequests = 1;
    const runner = s.runner();
    runner.start();
    await new Promise((r) => setImmediate(r));
    expect(s.jobs.calls).toEqual(['start-next']);
    await s.clock.advance(500); // full jitter of 1 s at random 0.5
    await runner.settled();
    expect(s.jobs.calls[1]).toBe('start-next');
    expect(s.jobs.get('held').status).toBe('SUCCEEDED');
    runner.stop();
  });
});

describe('job runner: agent updates', () => {
  const release = {
    url: 'https://example.com/r.tgz',
    manifest: Buffer.from('{}').toString('base64'),
    signature: 'AA==',
  };

  it('REJECTS an update when the agent has no updater, or trusts no key', async () => {
    const s = await setup();
    s.jobs.queue('u1', agentUpdateDocument({ version: '1.2.3', release }));
    const runner = s.runner();
    runner.start();
    await runner.settled();
    expect(s.jobs.get('u1')).toMatchObject({
      status: 'REJECTED',
      statusDetails: { version: '1.2.3', detail: expect.stringContaining('no updater') },
    });
    runner.stop();

    const calls: string[] = [];
    const updater: AgentUpdater = {
      async install() {
        calls.push('install');
        return { status: 'RESTARTING', step: 'switched' };
      },
      async onStart() {
        return { state: 'none' };
      },
      async confirmHealthy() {
        return { status: 'SUCCEEDED', step: 'confirmed' };
      },
    };
    const t = await setup({ updater, keys: [] });
    t.jobs.queue('u2', agentUpdateDocument({ version: '1.2.3', release }));
    const r2 = t.runner();
    r2.start();
    await r2.settled();
    expect(t.jobs.get('u2')).toMatchObject({
      status: 'REJECTED',
      statusDetails: { detail: expect.stringContaining('update.publicKeys') },
    });
    expect(calls).toEqual([]);
    r2.stop();
  });

  it('installs, waits for the restart, and SUCCEEDS once the new agent is healthy', async () => {
    let resume: UpdaterResume = { state: 'none' };
    const calls: string[] = [];
    const updater: AgentUpdater = {
      async install(_job, progress) {
        calls.push('install');
        await progress('downloaded', '1.2 MB');
        await progress('switched');
        resume = { state: 'awaiting-health', step: 'restarted' };
        return { status: 'RESTARTING', step: 'switched' };
      },
      async onStart() {
        return resume;
      },
      async confirmHealthy() {
        calls.push('confirm');
        return { status: 'SUCCEEDED', step: 'confirmed', detail: 'running 1.2.3' };
      },
    };
    const s = await setup({ updater, keys: ['PEM'] });
    s.jobs.queue('u3', agentUpdateDocument({ version: '1.2.3', release }));
    const first = s.runner();
    first.start();
    await first.settled();
    expect(s.jobs.get('u3')).toMatchObject({
      status: 'IN_PROGRESS',
      statusDetails: { step: 'switched', version: '1.2.3' },
    });
    first.stop();

    s.jobs.closed = false;
    const second = s.runner();
    second.start();
    await new Promise((r) => setImmediate(r));
    // Healthy: connected, shadow synced (setup synced it) and every sensor read once.
    expect(s.jobs.get('u3')).toMatchObject({ status: 'IN_PROGRESS', statusDetails: { step: 'restarted' } });
    await s.clock.advance(1_000);
    await second.settled();
    expect(calls).toEqual(['install', 'confirm']);
    expect(s.jobs.get('u3')).toMatchObject({
      status: 'SUCCEEDED',
      statusDetails: { step: 'confirmed', version: '1.2.3', detail: 'running 1.2.3' },
    });
    second.stop();
  });

  it('FAILS with the updater’s reason when it rolled back before the new agent could report', async () => {
    const updater: AgentUpdater = {
      async install() {
        return { status: 'RESTARTING', step: 'switched' };
      },
      async onStart() {
        return { state: 'ended', result: { status: 'FAILED', step: 'rolled-back', detail: 'health deadline passed' } };
      },
      async confirmHealthy() {
        throw new Error('not called');
      },
    };
    const s = await setup({ updater, keys: ['PEM'] });
    s.jobs.queue('u4', agentUpdateDocument({ version: '2.0.0', release }));
    const first = s.runner();
    first.start();
    await first.settled();
    first.stop();
    s.jobs.closed = false;
    const second = s.runner();
    second.start();
    await second.settled();
    expect(s.jobs.get('u4')).toMatchObject({
      status: 'FAILED',
      statusDetails: { step: 'rolled-back', detail: 'health deadline passed', version: '2.0.0' },
    });
    second.stop();
  });
});

describe('settings overlay', () => {
  it('merges settings into its file atomically and reads them back by the shadow rules', () => {
    const file = path.join(tempDir(), 'config-overlay.json');
    const overlay = createSettingsOverlay({ file });
    overlay.merge({ sampling: { env: 5000 }, logLevel: 'debug' });
    overlay.merge({ sampling: { light: 2000 }, batch: { maxReadings: 10 } } as DesiredState);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      sampling: { env: 5000, light: 2000 },
      batch: { maxReadings: 10 },
      logLevel: 'debug',
    });
    writeFileSync(file, '{"logLevel":"loud","sampling":{"env":5000}}');
    expect(overlay.read()).toEqual({ sampling: { env: 5000 } });
  });
});
