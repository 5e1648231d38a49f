import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTarball,
  createDevice,
  ed25519,
  jobFor,
  type ReleaseServer,
  signRelease,
  startReleaseServer,
} from './device.js';

/**
 * A full disk for real: the state directory on a 256 KiB tmpfs, mounted in a user and mount
 * namespace of its own (`unshare -Urm`, no privileges needed), so the ENOSPC comes from the kernel
 * and not from a seam. Runs where unprivileged user namespaces are allowed (updater.test.ts
 * injects ENOSPC through the fs seam everywhere).
 */
const canMountTmpfs =
  spawnSync('unshare', ['-Urm', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'], { timeout: 5_000 }).status === 0;

const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = createRequire(import.meta.url).resolve('tsx');
const root = mkdtempSync(path.join(tmpdir(), 'pifleet-diskfull-'));
const key = ed25519();
let server: ReleaseServer;

beforeAll(async () => {
  server = await startReleaseServer();
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

interface Outcome {
  result: { status: string; step: string; detail?: string };
  phase: string;
  reason?: { code: string; message: string };
  current: string;
  incoming: boolean;
  release: boolean;
}

async function installOnTinyDisk(name: string, extra: Buffer): Promise<{ outcome: Outcome; factoryDir: string }> {
  const tarball = await buildTarball(root, '2.0.0', 'healthy', { name: `${name}.bin`, bytes: extra });
  server.put(name, tarball);
  const d = createDevice(path.join(root, name), [key.publicKey]);
  const jobFile = path.join(d.dir, 'job.json');
  writeFileSync(
    jobFile,
    JSON.stringify(jobFor(`job-${name}`, '2.0.0', server.url(name), signRelease(tarball, '2.0.0', key))),
  );
  const child = spawn(
    'unshare',
    [
      '-Urm',
      'sh',
      '-c',
      'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"',
      d.stateDir,
      process.execPath,
      '--conditions=@pifleet/source',
      '--import',
      tsx,
      path.join(here, 'fixtures/disk-full.ts'),
      d.dir,
      jobFile,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code, err).toBe(0);
  return { outcome: JSON.parse(out) as Outcome, factoryDir: d.factoryDir };
}

describe.runIf(canMountTmpfs)('disk full (a 256 KiB tmpfs as the state directory)', () => {
  it('while downloading (400 KiB of incompressible bytes): FAILED, the partial file removed, nothing switched', async () => {
    const { outcome, factoryDir } = await installOnTinyDisk('random', randomBytes(400 * 1024));
    expect(outcome).toEqual({
      result: { status: 'FAILED', step: 'download', detail: 'no space left on the device for the release' },
      phase: 'failed',
      reason: { code: 'disk-full', message: 'no space left on the device for the release' },
      current: factoryDir,
      incoming: false,
      release: false,
    });
  });

  it('while unpacking (a small tarball of 2 MiB of zeros): FAILED, the temp dir removed, nothing switched', async () => {
    const { outcome, factoryDir } = await installOnTinyDisk('zeros', Buffer.alloc(2 * 1024 * 1024));
    expect(outcome).toEqual({
      result: { status: 'FAILED', step: 'unpack', detail: 'no space left on the device to unpack the release' },
      phase: 'failed',
      reason: { code: 'disk-full', message: 'no space left on the device to unpack the release' },
      current: factoryDir,
      incoming: false,
      release: false,
    });
  });
});
