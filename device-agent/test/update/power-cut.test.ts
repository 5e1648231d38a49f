import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UPDATE_STEP_POINTS } from '../../src/update/index.js';
import {
  buildTarball,
  createDevice,
  type Device,
  type DeviceRun,
  ed25519,
  giveJob,
  jobFor,
  type ReleaseServer,
  runDevice,
  type SignedRelease,
  signRelease,
  startReleaseServer,
} from './device.js';
import { AGENT_ENTRIES, rawTar } from './tar-entries.js';

/**
 * The updater with real processes and real files: a fake systemd runs the boot guard and then
 * `current/bin/pifleet-agent.js`, restarting it whenever it exits; the agents are tiny releases
 * built here, each running the real updater. Whatever happens (a SIGKILL at any step boundary, a
 * release that crashes at start or never becomes healthy, a bad release), the device ends running
 * a working agent: the new version with SUCCEEDED, or the old one with FAILED/REJECTED and why.
 */

const root = mkdtempSync(path.join(tmpdir(), 'pifleet-update-'));
const trusted = ed25519();
const untrusted = ed25519();
let server: ReleaseServer;
const releases = new Map<string, SignedRelease>();

beforeAll(async () => {
  server = await startReleaseServer();
  // 256 KiB of random bytes in each release, so a download takes several chunks and a cut in the
  // middle of one leaves a partial file.
  const payload = { name: 'payload.bin', bytes: randomBytes(256 * 1024) };
  for (const [name, behaviour] of [
    ['healthy', 'healthy'],
    ['crash', 'crash'],
    ['never-healthy', 'never-healthy'],
  ] as const) {
    const release = signRelease(await buildTarball(root, '2.0.0', behaviour, payload), '2.0.0', trusted);
    releases.set(name, release);
    server.put(name, release.tarball);
  }
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

let devices = 0;
function device(): Device {
  return createDevice(path.join(root, `device-${++devices}`), [trusted.publicKey]);
}

function withJob(
  d: Device,
  name: string,
  release = releases.get(name) as SignedRelease,
  jobId = `job-${devices}`,
): Device {
  giveJob(d, jobFor(jobId, '2.0.0', server.url(name), release));
  return d;
}

const stateOf = (d: Device) =>
  JSON.parse(readFileSync(path.join(d.stateDir, 'update.json'), 'utf8')) as Record<string, unknown>;

/** The device ends on a runnable agent: `current` names a directory with the launcher, and an agent of that version ran. */
function expectRunning(d: Device, run: DeviceRun, version: string, dir: string): void {
  expect(run.running, JSON.stringify(run.events)).toBe(version);
  expect(readlinkSync(d.currentLink)).toBe(dir);
  expect(existsSync(path.join(dir, 'bin/pifleet-agent.js'))).toBe(true);
}

function expectUpdated(d: Device, run: DeviceRun): void {
  expect(run.outcome?.result).toMatchObject({ status: 'SUCCEEDED' });
  expectRunning(d, run, '2.0.0', path.join(d.stateDir, 'releases/2.0.0'));
  expect(stateOf(d)).toMatchObject({ phase: 'succeeded', version: '2.0.0', previous: d.factoryDir });
}

function expectKeptOld(d: Device, run: DeviceRun, status: 'FAILED' | 'REJECTED', detail: RegExp): void {
  expect(run.outcome?.result).toMatchObject({ status, detail: expect.stringMatching(detail) });
  expect(run.outcome?.version).toBe('1.0.0');
  expectRunning(d, run, '1.0.0', d.factoryDir);
}

// Each case starts 2-6 agent processes through tsx (~1.3 s each on an idle machine, several times that on a busy one).
describe('agent update on a device (real processes, fake systemd)', { timeout: 120_000 }, () => {
  it('a healthy release: downloaded, verified, unpacked side by side, switched, confirmed; SUCCEEDED', async () => {
    const d = withJob(device(), 'healthy');
    const run = await runDevice(d);
    expectUpdated(d, run);
    // The factory install ran first (the guard pointed the missing link at it), then the new release.
    expect(run.events.filter((e) => e.type === 'start').map((e) => e.version)).toEqual(['1.0.0', '2.0.0']);
    expect(run.events.filter((e) => e.type === 'progress').map((e) => e.step)).toEqual([
      'verify',
      'download',
      'unpack',
      'switch',
      'restart',
    ]);
    expect(readdirSync(path.join(d.stateDir, 'releases'))).toEqual(['2.0.0']);
  });

  it('a release that crashes at every start is rolled back by the boot guard after 3 starts; FAILED', async () => {
    const d = withJob(device(), 'crash');
    const run = await runDevice(d);
    expectKeptOld(
      d,
      run,
      'FAILED',
      /rolled back from 2\.0\.0: release 2\.0\.0 was started 3 times without confirming health/,
    );
    expect(run.events.filter((e) => e.type === 'crash')).toHaveLength(3);
    expect(stateOf(d)).toMatchObject({ phase: 'rolled-back', reason: { code: 'crashed-at-start' } });
  });

  it('a release that never becomes healthy is rolled back at its deadline by its own updater; FAILED', async () => {
    const d = withJob(device(), 'never-healthy');
    const run = await runDevice(d, { healthDeadlineMs: 1_500 });
    expectKeptOld(d, run, 'FAILED', /did not confirm health within 2 s/);
    expect(run.events.some((e) => e.type === 'restart' && e.version === '2.0.0')).toBe(true);
    expect(stateOf(d)).toMatchObject({ phase: 'rolled-back', reason: { code: 'health-deadline' } });
  });

  const healthy = () => releases.get('healthy') as SignedRelease;
  it.each<[string, () => SignedRelease, RegExp]>([
    [
      'a corrupt tarball',
      () => ({ ...healthy(), tarball: Buffer.from(healthy().tarball).fill(0, 100, 120) }),
      /SHA-256 [0-9a-f]+ is not the manifest's/,
    ],
    [
      'a bad signature',
      () => ({ ...healthy(), signature: healthy().signature.map((b) => b ^ 0xff) }),
      /does not verify/,
    ],
    ['the wrong key', () => signRelease(healthy().tarball, '2.0.0', untrusted), /which this device does not trust/],
    ['no signature', () => ({ ...healthy(), signature: new Uint8Array() }), /unsigned/],
  ])('%s: REJECTED with the reason, nothing switched', async (name, make, detail) => {
    const release = make();
    server.put(`bad-${devices + 1}`, release.tarball);
    const d = device();
    giveJob(d, jobFor(`job-${devices}`, '2.0.0', server.url(`bad-${devices}`), release));
    const run = await runDevice(d);
    expectKeptOld(d, run, 'REJECTED', detail);
    expect(existsSync(path.join(d.stateDir, 'releases/2.0.0')), name).toBe(false);
    expect(stateOf(d)).toMatchObject({ phase: 'rejected' });
  });

  it('a signed tarball with a path-traversal entry: REJECTED, nothing written outside or switched', async () => {
    const tarball = rawTar([...AGENT_ENTRIES, { path: '../../escaped.js', body: 'x' }]);
    const release = signRelease(tarball, '2.0.0', trusted);
    server.put('traversal', tarball);
    const d = withJob(device(), 'traversal', release);
    const run = await runDevice(d);
    expectKeptOld(d, run, 'REJECTED', /entry "\.\.\/\.\.\/escaped\.js": a `\.\.` in its path/);
    expect(existsSync(path.join(d.stateDir, 'escaped.js'))).toBe(false);
    expect(existsSync(path.join(d.dir, 'escaped.js'))).toBe(false);
  });

  it('an interrupted download resumes with a Range request and the update succeeds', async () => {
    const name = 'healthy-interrupted';
    server.put(name, healthy().tarball);
    server.interruptOnce(name);
    const before = server.requests.length;
    const d = withJob(device(), name, healthy());
    const run = await runDevice(d);
    expectUpdated(d, run);
    const gets = server.requests.slice(before).filter((r) => r.name === name);
    expect(gets).toHaveLength(2);
    expect(gets[0]?.range).toBeUndefined();
    expect(gets[1]?.range).toBe(`bytes=${Math.floor(healthy().tarball.byteLength / 2)}-`);
  });

  it('a `current` link pointing nowhere: the production boot guard points it back at the factory install', async () => {
    const d = device();
    symlinkSync(path.join(d.stateDir, 'releases/9.9.9'), d.currentLink);
    const run = await runDevice(d, { productionGuard: true });
    expectRunning(d, run, '1.0.0', d.factoryDir);
    expect(run.guardLog).toMatch(/current release link repaired/);
  });
});

describe('power cut (SIGKILL) at every step boundary', { timeout: 120_000 }, () => {
  it.each(UPDATE_STEP_POINTS.map((p) => [p]))('healthy release, killed at %s: resumes and SUCCEEDS', async (point) => {
    const before = server.requests.length;
    const d = withJob(device(), 'healthy');
    const run = await runDevice(d, { fault: point });
    expect(run.events.some((e) => e.type === 'fault' && e.point === point)).toBe(true);
    expectUpdated(d, run);
    const ranges = server.requests.slice(before).map((r) => r.range);
    if (point === 'download-partial') {
      // Killed with half the release on disk: the restarted agent asked for the rest only.
      expect(ranges).toHaveLength(2);
      expect(ranges[1]).toMatch(/^bytes=[1-9]\d*-$/);
    } else {
      // Killed anywhere else: the release was downloaded once.
      expect(ranges).toEqual([undefined]);
    }
  });

  it.each(['guard:counted', 'rolling-back', 'rolled-back-link'])(
    'release crashing at start, guard killed at %s: still rolled back; FAILED',
    async (point) => {
      const d = withJob(device(), 'crash');
      const run = await runDevice(d, { fault: point });
      expect(run.events.some((e) => e.type === 'exit')).toBe(true);
      expect(readFileSync(path.join(d.dir, 'fault.fired'), 'utf8')).toBe(point);
      expectKeptOld(d, run, 'FAILED', /rolled back from 2\.0\.0/);
    },
  );

  it.each(['rolling-back', 'rolled-back-link'])(
    'release never healthy, its own rollback killed at %s: the guard finishes it; FAILED',
    async (point) => {
      const d = withJob(device(), 'never-healthy');
      const run = await runDevice(d, { fault: point, healthDeadlineMs: 1_500 });
      expect(run.events.some((e) => e.type === 'fault' && e.point === point)).toBe(true);
      expectKeptOld(d, run, 'FAILED', /did not confirm health/);
    },
  );
});
