import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EXIT, makeReleaseManifest, serializeReleaseManifest, signReleaseManifest } from '@pifleet/protocol';
import { removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers.js';

/**
 * `jobs create|describe|cancel` refuse bad options before they reach any IoT endpoint: exit 64,
 * one line with a hint. No target is configured here (no credentials, no region, no local core),
 * so a command that went on to the network would fail differently (77/78).
 */

const cwd = tempDir('jobs-usage');
afterAll(() => removeDir(cwd));
fs.writeFileSync(path.join(cwd, 'm.json'), '{"not":"a manifest"}');
fs.writeFileSync(path.join(cwd, 'm.sig'), 'x');

const create = (...args: string[]) => cli(['jobs', 'create', ...args], { cwd });

describe('jobs create: usage errors (exit 64)', () => {
  it.each<[string, string[], string]>([
    [
      'an unknown type',
      ['--type', 'upgrade', '--things', 'a'],
      'unknown job type "upgrade" (hint: --type is one of: agent-update, config, reboot)',
    ],
    [
      'neither --things nor --group',
      ['--type', 'reboot'],
      'give --things or --group (hint: a job targets --things a,b,c or one --group G (its child groups included))',
    ],
    [
      'both --things and --group',
      ['--type', 'reboot', '--things', 'a', '--group', 'g'],
      'give --things or --group, not both',
    ],
    [
      'a percentage over 100',
      ['--type', 'reboot', '--things', 'a', '--abort-failure-percent', '120'],
      '--abort-failure-percent must be a percentage above 0 and at most 100',
    ],
    [
      'a percentage with three decimals',
      ['--type', 'reboot', '--things', 'a', '--abort-failure-percent', '10.999'],
      '--abort-failure-percent must be a percentage',
    ],
    [
      'a minimum without a percentage',
      ['--type', 'reboot', '--things', 'a', '--abort-min-executed', '5'],
      '--abort-min-executed needs --abort-failure-percent',
    ],
    [
      'a rollout over 1000/min',
      ['--type', 'reboot', '--things', 'a', '--rollout-per-minute', '5000'],
      '--rollout-per-minute must be an integer from 1 to 1000, got 5000',
    ],
    [
      'too many retries',
      ['--type', 'reboot', '--things', 'a', '--retries', '11'],
      '--retries must be an integer from 0 to 10, got 11',
    ],
    ['a bad job id', ['--type', 'reboot', '--things', 'a', '--job-id', 'no spaces'], 'invalid job id "no spaces"'],
    [
      '--config on a reboot job',
      ['--type', 'reboot', '--things', 'a', '--config', '{}'],
      '--config is for --type config jobs, not reboot',
    ],
    [
      '--release on a config job',
      ['--type', 'config', '--things', 'a', '--release', 'm.json'],
      '--release is for --type agent-update jobs, not config',
    ],
    [
      'a config job without --config',
      ['--type', 'config', '--things', 'a'],
      'a config job needs --config JSON (or @FILE)',
    ],
    [
      'an update without --url',
      ['--type', 'agent-update', '--things', 'a', '--release', 'm.json'],
      'an agent-update job needs --release MANIFEST and --url S3URL',
    ],
    [
      'an update URL that is not S3',
      ['--type', 'agent-update', '--things', 'a', '--release', 'm.json', '--url', 'https://example.com/x.tgz'],
      '--url "https://example.com/x.tgz" is not an S3 object URL: its host is not s3[.REGION].amazonaws.com or BUCKET.s3[.REGION].amazonaws.com',
    ],
  ])('%s', async (_label, args, message) => {
    const r = await create(...args);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`pifleet: ${message}`);
  });

  it('a missing --type is commander’s usage error', async () => {
    const r = await create('--things', 'a');
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(/required option '--type <type>' not specified/);
  });

  it.each<[string, string[], RegExp]>([
    ['a file that is not a manifest', ['--release', 'm.json'], /m\.json is not a release manifest: manifest: /],
    ['a missing manifest', ['--release', 'none.json'], /cannot read --release file .*none\.json \(ENOENT\)/],
    ['bad --config JSON', [], /--config is not valid JSON/],
  ])('bad input files and values: %s (exit 65)', async (label, extra, message) => {
    const args =
      label === 'bad --config JSON'
        ? ['--type', 'config', '--things', 'a', '--config', '{"sampling":']
        : ['--type', 'agent-update', '--things', 'a', '--url', 'https://s3.amazonaws.com/b/k', ...extra];
    const r = await create(...args);
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr).toMatch(message);
  });

  it('--json errors are JSON on stderr', async () => {
    const r = await create('--type', 'nope', '--things', 'a', '--json');
    expect(r.code).toBe(EXIT.usage);
    expect(JSON.parse(r.stderr)).toEqual({
      error: {
        code: 'USAGE',
        message: 'unknown job type "nope"',
        hint: '--type is one of: agent-update, config, reboot',
        exitCode: EXIT.usage,
      },
    });
  });
});

describe('jobs describe/cancel/list: usage errors (exit 64)', () => {
  it.each<[string[], RegExp]>([
    [['jobs', 'describe', 'bad id'], /invalid job id "bad id"/],
    [['jobs', 'describe', 'j1', '--interval', '0'], /--interval must be an integer from 1 to 300, got 0/],
    [['jobs', 'cancel', 'a/b'], /invalid job id "a\/b"/],
    [
      ['jobs', 'list', '--status', 'DONE'],
      /unknown --status "DONE" \(hint: use one of: IN_PROGRESS, CANCELED, COMPLETED/,
    ],
  ])('%j', async (args, message) => {
    const r = await cli(args, { cwd });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(message);
  });
});

describe('jobs create --type agent-update against AWS: the presign role', () => {
  const key = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  }).privateKey;
  const bytes = serializeReleaseManifest(
    makeReleaseManifest({ version: '1.0.0', sha256: 'b'.repeat(64), size: 10, key }),
  );
  fs.writeFileSync(path.join(cwd, 'r.manifest.json'), bytes);
  fs.writeFileSync(path.join(cwd, 'r.manifest.sig'), signReleaseManifest(bytes, key));
  // An AWS target that would fail on any request (no such credentials): the refusal comes first.
  const aws = { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'not-a-secret' };
  const args = ['jobs', 'create', '--type', 'agent-update', '--things', 'pi-1', '--release', 'r.manifest.json'];
  const url = ['--url', 'https://s3.eu-west-1.amazonaws.com/artifacts/releases/pifleet-agent-1.0.0.tar.gz'];

  it('without --presign-role-arn: exit 64 naming the stack output, before any request', async () => {
    const r = await cli([...args, ...url], { cwd, env: aws });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toBe(
      'pifleet: an agent-update job in AWS needs --presign-role-arn (or PIFLEET_PRESIGN_ROLE_ARN) (hint: the role IoT assumes to presign the tarball URL: the stack output ArtifactsPresignRoleArn)\n',
    );
  });

  it('a PIFLEET_PRESIGN_ROLE_ARN that is not a role ARN: exit 64', async () => {
    const r = await cli([...args, ...url], { cwd, env: { ...aws, PIFLEET_PRESIGN_ROLE_ARN: 'my-role' } });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(/^pifleet: --presign-role-arn "my-role" is not an IAM role ARN/);
  });

  it('--url-expires-sec outside 60-3600: exit 64', async () => {
    const r = await cli([...args, ...url, '--url-expires-sec', '7200'], { cwd, env: aws });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(/--url-expires-sec must be an integer from 60 to 3600, got 7200/);
  });
});
