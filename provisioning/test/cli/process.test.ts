import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BINS, REPO, type RunningCoreProcess, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalCore } from '../helpers.js';

/** The `pifleet` bin as a process: argv, env, exit codes, streams. */

let core: RunningCoreProcess;
let work: string;

beforeAll(async () => {
  core = await startLocalCore(tempDir('proc-core'));
  work = tempDir('proc-work');
});

afterAll(async () => {
  await core?.stop();
  removeDir(core.dataDir);
  removeDir(work);
});

/** A clean environment: no AWS settings leak in from the machine running the tests. */
function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BINS.pifleet, ...args], {
    cwd: work,
    env: { PATH: process.env.PATH ?? '', HOME: work, AWS_EC2_METADATA_DISABLED: 'true', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('pifleet as a process', () => {
  it('creates, describes and deletes a thing through PIFLEET_LOCAL; keys never reach stdout', () => {
    const env = { PIFLEET_LOCAL: core.dataDir };
    const created = run(['things', 'create', 'proc-1', '--json'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ thingName: 'proc-1', status: 'created' });
    expect(created.stdout + created.stderr).not.toContain('PRIVATE KEY');
    expect(fs.existsSync(path.join(work, '.pifleet', 'bundles', 'proc-1', 'private.pem.key'))).toBe(true);

    const described = run(['things', 'describe', 'proc-1'], env);
    expect(described.stderr).toBe('');
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(/ACTIVE {2}policies: pifleet-device/);

    const deleted = run(['things', 'delete', 'proc-1'], env);
    expect(deleted.code).toBe(0);
    const missing = run(['things', 'describe', 'proc-1'], env);
    expect(missing.code).toBe(65);
    // Started by its path (a checkout: `pifleet` is not on PATH), so the hint runs it by its path.
    expect(missing.stderr).toBe(`pifleet: thing proc-1 not found (hint: node ${BINS.pifleet} things list)\n`);
    const hint = /\(hint: (.*)\)$/.exec(missing.stderr.trim())?.[1] ?? '';
    const again = spawnSync('sh', ['-c', hint], {
      cwd: work,
      env: { PATH: process.env.PATH ?? '', HOME: work, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/\d+ things?$/m);
  });

  it('prints hints relative to the working directory, and the local core as the checkout runs it', () => {
    const r = spawnSync(process.execPath, [path.relative(REPO, BINS.pifleet), '--local', work, 'things', 'list'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: work },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(78);
    expect(r.stderr).toBe(
      `pifleet: ${work} is not a local IoT Core data directory (no credentials, no endpoint.json) (hint: start it with: node cloud/bin/pifleet-local-core.js --data-dir ${work})\n`,
    );
  });

  it('--version prints the package version', () => {
    const r = run(['--version']);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'provisioning/package.json'), 'utf8')) as {
      version: string;
    };
    expect(r.stdout).toBe(`${pkg.version}\n`);
  });

  it('AWS target without credentials: exit 77 with a hint, in one line', () => {
    const r = run(['things', 'list'], { AWS_REGION: 'eu-west-1' });
    expect(r.code).toBe(77);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^pifleet: no AWS credentials found: .*\(hint: configure credentials/);
  });

  it('AWS target without a region: exit 78', () => {
    const r = run(['things', 'list'], { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'x' });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/^pifleet: no AWS region configured \(hint: set AWS_REGION/);
  });

  it('usage errors exit 64', () => {
    const r = run(['things', 'create']);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/^pifleet: missing required argument 'name'/);
  });
});
