import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  makeReleaseManifest,
  type ReleaseTarget,
  serializeReleaseManifest,
  signReleaseManifest,
} from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { createUpdater, nodeFs, runBootGuard, type UpdateFs, type UpdaterDeps } from '../../src/update/index.js';
import {
  buildTarball,
  createDevice,
  type Device,
  ed25519,
  jobFor,
  type ReleaseServer,
  type SignedRelease,
  signRelease,
  startReleaseServer,
} from './device.js';
import { rawTar } from './tar-entries.js';

/**
 * The updater in-process, for what needs a seam rather than a process: a full disk (ENOSPC from
 * the injected file system), the health deadline on a virtual clock, pruning across updates, and
 * the calls a job runner may repeat.
 */

const root = mkdtempSync(path.join(tmpdir(), 'pifleet-updater-'));
const key = ed25519();
let server: ReleaseServer;
const signed = new Map<string, SignedRelease>();

beforeAll(async () => {
  server = await startReleaseServer();
  for (const version of ['2.0.0', '3.0.0', '4.0.0']) {
    const release = signRelease(await buildTarball(root, version, 'healthy'), version, key);
    signed.set(version, release);
    server.put(version, release.tarball);
  }
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
async function freshDevice(): Promise<Device> {
  const d = createDevice(path.join(root, `d${++n}`), [key.publicKey]);
  await runBootGuard({ stateDir: d.stateDir, factoryDir: d.factoryDir });
  return d;
}

function updaterFor(d: Device, over: Partial<UpdaterDeps> = {}) {
  const restarts: string[] = [];
  const clock = createVirtualClock();
  const updater = createUpdater({
    stateDir: d.stateDir,
    factoryDir: d.factoryDir,
    publicKeys: [key.publicKey],
    healthDeadlineMs: 60_000,
    clock,
    logger: silentLogger(),
    restart: (reason) => restarts.push(reason),
    ...over,
  });
  return { updater, clock, restarts };
}

const job = (version: string, jobId = `job-${version}`, release = signed.get(version) as SignedRelease) =>
  jobFor(jobId, version, server.url(version), release);
const noProgress = async () => {};
const state = (d: Device) =>
  JSON.parse(readFileSync(path.join(d.stateDir, 'update.json'), 'utf8')) as Record<string, unknown>;

/** Installs and confirms `version` as the restarted agent would (an updater running from the new release). */
async function update(d: Device, version: string): Promise<void> {
  const { updater, clock } = updaterFor(d);
  expect(await updater.install(job(version), noProgress)).toEqual({ status: 'RESTARTING', step: 'restart' });
  await runBootGuard({ stateDir: d.stateDir, factoryDir: d.factoryDir, now: () => clock.now() });
  const restarted = updaterFor(d, { runningDir: path.join(d.stateDir, 'releases', version) }).updater;
  expect(await restarted.onStart(`job-${version}`)).toMatchObject({ state: 'awaiting-health' });
  expect(await restarted.confirmHealthy(`job-${version}`)).toMatchObject({ status: 'SUCCEEDED' });
  restarted.stop();
}

/** An fs whose file writes fail with ENOSPC for paths `full` matches. */
function diskFull(full: (file: string) => boolean): UpdateFs {
  const enospc = () =>
    Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
  return {
    ...nodeFs,
    open: (async (file: string, ...rest: unknown[]) => {
      const handle = await (nodeFs.open as (...a: unknown[]) => ReturnType<UpdateFs['open']>)(file, ...rest);
      if (!full(String(file))) return handle;
      return new Proxy(handle, {
        get(target, prop, receiver) {
          if (prop === 'write' || prop === 'writeFile') return async () => Promise.reject(enospc());
          const value = Reflect.get(target, prop, receiver) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    }) as UpdateFs['open'],
  };
}

describe('createUpdater: the release target', () => {
  const pi = { platform: 'linux', arch: 'arm64', nodeAbi: 137 } as const;
  /** 2.0.0's tarball with a manifest made (and signed) for `target`. */
  function builtFor(target: ReleaseTarget): SignedRelease {
    const { tarball } = signed.get('2.0.0') as SignedRelease;
    const manifest = serializeReleaseManifest(
      makeReleaseManifest({
        version: '2.0.0',
        sha256: createHash('sha256').update(tarball).digest('hex'),
        size: tarball.byteLength,
        key: key.privateKey,
        target,
      }),
    );
    return { tarball, manifest, signature: signReleaseManifest(manifest, key.privateKey) };
  }

  it.each([
    ['an x64 build on a Pi', { ...pi, arch: 'x64' }, 'linux-x64, Node ABI 137'],
    ['a build for another Node ABI', { ...pi, nodeAbi: 127 }, 'linux-arm64, Node ABI 127'],
  ] as const)(
    '%s: REJECTED naming both targets, before any download, nothing written but the record',
    async (_, target, built) => {
      const d = await freshDevice();
      const before = server.requests.length;
      const steps: string[] = [];
      const result = await updaterFor(d, { target: pi }).updater.install(
        jobFor('job-target', '2.0.0', server.url('2.0.0'), builtFor(target)),
        async (step) => {
          steps.push(step);
        },
      );
      expect(result).toEqual({
        status: 'REJECTED',
        step: 'verify',
        detail: `release is built for ${built}; this device is linux-arm64, Node ABI 137`,
      });
      expect(steps).toEqual(['verify']);
      expect(server.requests.length).toBe(before);
      expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
      expect(existsSync(path.join(d.stateDir, 'releases'))).toBe(false);
      expect(state(d)).toMatchObject({ phase: 'rejected', reason: { code: 'target-mismatch' } });
    },
  );

  it('a release built for the device installs', async () => {
    const d = await freshDevice();
    const result = await updaterFor(d, { target: pi }).updater.install(
      jobFor('job-target-ok', '2.0.0', server.url('2.0.0'), builtFor(pi)),
      noProgress,
    );
    expect(result).toEqual({ status: 'RESTARTING', step: 'restart' });
  });
});

describe('createUpdater', () => {
  it('keeps the running release and the previous one, and prunes older ones', async () => {
    const d = await freshDevice();
    await update(d, '2.0.0');
    expect(state(d)).toMatchObject({
      phase: 'succeeded',
      previous: d.factoryDir,
      lastGood: path.join(d.stateDir, 'releases/2.0.0'),
    });
    await update(d, '3.0.0');
    expect(readdirSync(path.join(d.stateDir, 'releases')).sort()).toEqual(['2.0.0', '3.0.0']);
    await update(d, '4.0.0');
    expect(readdirSync(path.join(d.stateDir, 'releases')).sort()).toEqual(['3.0.0', '4.0.0']);
    expect(readlinkSync(d.currentLink)).toBe(path.join(d.stateDir, 'releases/4.0.0'));
    expect(state(d)).toMatchObject({ previous: path.join(d.stateDir, 'releases/3.0.0') });
  });

  it('disk full while downloading: FAILED with the reason, the partial download removed, nothing switched', async () => {
    const d = await freshDevice();
    const { updater } = updaterFor(d, { fs: diskFull((f) => f.endsWith('.tar.gz')) });
    expect(await updater.install(job('2.0.0'), noProgress)).toEqual({
      status: 'FAILED',
      step: 'download',
      detail: 'no space left on the device for the release',
    });
    expect(state(d)).toMatchObject({ phase: 'failed', reason: { code: 'disk-full' } });
    expect(existsSync(path.join(d.stateDir, 'releases/.incoming'))).toBe(false);
    expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
  });

  it('disk full when recording a step: the install throws, the last record and the link are as they were', async () => {
    const d = await freshDevice();
    await update(d, '2.0.0');
    const before = readFileSync(path.join(d.stateDir, 'update.json'), 'utf8');
    const { updater } = updaterFor(d, { fs: diskFull((f) => f.endsWith('update.json.tmp')) });
    await expect(updater.install(job('3.0.0'), noProgress)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(readFileSync(path.join(d.stateDir, 'update.json'), 'utf8')).toBe(before);
    expect(readlinkSync(d.currentLink)).toBe(path.join(d.stateDir, 'releases/2.0.0'));
  });

  it('the health deadline passes on the clock: rolled back to the previous release, restart asked, FAILED after', async () => {
    const d = await freshDevice();
    const { updater } = updaterFor(d);
    await updater.install(job('2.0.0'), noProgress);
    const restarted = updaterFor(d, { runningDir: path.join(d.stateDir, 'releases/2.0.0') });
    expect(await restarted.updater.onStart('job-2.0.0')).toMatchObject({ state: 'awaiting-health', step: 'health' });
    await restarted.clock.advance(59_999);
    expect(restarted.restarts).toEqual([]);
    await restarted.clock.advance(1);
    await expect.poll(() => restarted.restarts).toEqual(['release 2.0.0 did not confirm health within 60 s']);
    expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
    // The healthy signal that comes too late confirms nothing.
    expect(await restarted.updater.confirmHealthy('job-2.0.0')).toMatchObject({ status: 'FAILED', step: 'rollback' });
    const old = updaterFor(d, { runningDir: d.factoryDir }).updater;
    expect(await old.onStart('job-2.0.0')).toEqual({
      state: 'ended',
      result: {
        status: 'FAILED',
        step: 'rollback',
        detail: 'rolled back from 2.0.0: release 2.0.0 did not confirm health within 60 s',
      },
    });
  });

  it('a restart on a clock set back (a Pi without a real-time clock) still rolls back after the deadline, not days later', async () => {
    const d = await freshDevice();
    await updaterFor(d).updater.install(job('2.0.0'), noProgress);
    // The new agent starts before NTP: its wall clock is three days behind the install's.
    const behind = createVirtualClock({ start: Date.UTC(2026, 0, 1) - 3 * 24 * 3_600_000 });
    const restarted = updaterFor(d, { runningDir: path.join(d.stateDir, 'releases/2.0.0'), clock: behind });
    expect(await restarted.updater.onStart('job-2.0.0')).toMatchObject({ state: 'awaiting-health', step: 'health' });
    await behind.advance(59_999);
    expect(restarted.restarts).toEqual([]);
    await behind.advance(1);
    await expect.poll(() => restarted.restarts).toEqual(['release 2.0.0 did not confirm health within 60 s']);
    expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
  });

  it('the old agent cannot confirm the new release (confirmHealthy checks which release runs)', async () => {
    const d = await freshDevice();
    await updaterFor(d).updater.install(job('2.0.0'), noProgress);
    const old = updaterFor(d, { runningDir: d.factoryDir }).updater;
    expect(await old.confirmHealthy('job-2.0.0')).toMatchObject({ status: 'FAILED', step: 'health' });
    expect(state(d)).toMatchObject({ phase: 'verifying' });
  });

  it('given the `current` link as its running dir, the old agent still cannot confirm after its own switch', async () => {
    const d = await freshDevice();
    const old = updaterFor(d, { runningDir: d.currentLink }).updater;
    expect(await old.install(job('2.0.0'), noProgress)).toMatchObject({ status: 'RESTARTING' });
    expect(readlinkSync(d.currentLink)).toBe(path.join(d.stateDir, 'releases/2.0.0'));
    expect(await old.confirmHealthy('job-2.0.0')).toMatchObject({ status: 'FAILED', step: 'health' });
    const restarted = updaterFor(d, { runningDir: d.currentLink }).updater;
    expect(await restarted.onStart('job-2.0.0')).toMatchObject({ state: 'awaiting-health', step: 'health' });
    expect(await restarted.confirmHealthy('job-2.0.0')).toMatchObject({ status: 'SUCCEEDED' });
    restarted.stop();
  });

  it('repeating a job after it ended returns the same result without downloading again', async () => {
    const d = await freshDevice();
    await update(d, '2.0.0');
    const before = server.requests.length;
    const again = await updaterFor(d).updater.install(job('2.0.0'), noProgress);
    expect(again).toEqual({ status: 'SUCCEEDED', step: 'health', detail: 'agent 2.0.0 is running and healthy' });
    expect(server.requests.length).toBe(before);
  });

  it('another job while an update is being verified is REJECTED', async () => {
    const d = await freshDevice();
    await updaterFor(d).updater.install(job('2.0.0'), noProgress);
    expect(await updaterFor(d).updater.install(job('3.0.0'), noProgress)).toEqual({
      status: 'REJECTED',
      step: 'validate',
      detail: 'update 2.0.0 (job job-2.0.0) is still being verified',
    });
  });

  it('the version already running: SUCCEEDED at once, nothing downloaded', async () => {
    const d = await freshDevice();
    await update(d, '2.0.0');
    const before = server.requests.length;
    expect(await updaterFor(d).updater.install(job('2.0.0', 'job-again'), noProgress)).toEqual({
      status: 'SUCCEEDED',
      step: 'verify',
      detail: 'agent 2.0.0 is already running',
    });
    expect(server.requests.length).toBe(before);
  });

  it.each<[string, () => { deps?: Partial<UpdaterDeps>; job: ReturnType<typeof job> }, Record<string, unknown>]>([
    [
      'no trusted keys',
      () => ({ deps: { publicKeys: [] }, job: job('2.0.0') }),
      { status: 'REJECTED', step: 'verify', detail: 'no release public keys are configured on this device' },
    ],
    [
      'a version that is not semver (it would name a directory)',
      () => ({ job: { ...job('2.0.0'), document: { ...job('2.0.0').document, version: '../../../etc' } } }),
      { status: 'REJECTED', step: 'validate', detail: 'version must be a semantic version such as 1.2.3' },
    ],
    [
      'a job version the manifest does not sign',
      () => ({ job: { ...job('2.0.0'), document: { ...job('2.0.0').document, version: '3.0.0' } } }),
      { status: 'REJECTED', step: 'verify', detail: 'job asks for version 3.0.0 but the signed manifest is for 2.0.0' },
    ],
    [
      'a signed tarball that is not an agent',
      () => {
        const tarball = rawTar([{ path: 'README', body: 'hello' }]);
        server.put('not-an-agent', tarball);
        const release = signRelease(tarball, '2.0.0', key);
        return { job: jobFor('job-x', '2.0.0', server.url('not-an-agent'), release) };
      },
      { status: 'REJECTED', step: 'unpack', detail: expect.stringMatching(/no bin\/pifleet-agent\.js/) },
    ],
    [
      'a server sending more than the signed size',
      () => {
        const real = signed.get('2.0.0') as SignedRelease;
        server.put('oversized', Buffer.concat([real.tarball, Buffer.alloc(64 * 1024)]));
        return { job: jobFor('job-x', '2.0.0', server.url('oversized'), real) };
      },
      {
        status: 'REJECTED',
        step: 'download',
        detail: expect.stringMatching(/larger than the \d+ bytes its manifest signs/),
      },
    ],
    [
      'an expired presigned URL (the server refuses)',
      () => ({ job: jobFor('job-x', '2.0.0', server.url('no-such-object'), signed.get('2.0.0') as SignedRelease) }),
      { status: 'FAILED', step: 'download', detail: 'download refused: HTTP 404' },
    ],
  ])('%s: nothing switched', async (_name, make, expected) => {
    const d = await freshDevice();
    const { deps, job: j } = make();
    expect(await updaterFor(d, deps).updater.install(j, noProgress)).toEqual(expected);
    expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
    expect(existsSync(path.join(d.stateDir, 'releases/2.0.0'))).toBe(false);
  });
});

describe('createUpdater: a state directory the file system will not make', () => {
  // Node's mkdir(…, { recursive: true }) never settled under /proc (procfs answers ENOENT below an
  // existing /proc): the job stayed IN_PROGRESS with the agent's event loop spinning.
  it.runIf(existsSync('/proc/self'))('the install fails with ENOENT instead of never settling', async () => {
    const d = await freshDevice();
    const stateDir = `/proc/pifleet-${process.pid}/state`;
    const { updater } = updaterFor(d, { stateDir });
    await expect(updater.install(job('2.0.0'), noProgress)).rejects.toMatchObject({
      code: 'ENOENT',
      syscall: 'mkdir',
      path: path.dirname(stateDir),
    });
    expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
  });
});
