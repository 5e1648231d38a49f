import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatLocalEndpoint, LOCAL_PROFILE, type LocalEndpoint } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCAL_DEFAULT_ENDPOINTS, resolveTarget } from '../../src/config/target.js';
import { CredentialsError, TargetConfigError } from '../../src/errors.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-target-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const CA = '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n';
const CREDS = `[${LOCAL_PROFILE}]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n`;

function dataDir(
  name: string,
  files: { credentials?: string; endpoint?: string | ((dir: string) => string); ca?: boolean },
): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'ca'), { recursive: true });
  if (files.ca !== false) fs.writeFileSync(path.join(dir, 'ca', 'ca.pem'), CA);
  if (files.credentials !== undefined) fs.writeFileSync(path.join(dir, 'credentials'), files.credentials);
  const endpoint = typeof files.endpoint === 'function' ? files.endpoint(dir) : files.endpoint;
  if (endpoint !== undefined) fs.writeFileSync(path.join(dir, 'endpoint.json'), endpoint);
  return dir;
}

/** The endpoint file a core on `dir` writes. */
const written =
  (overrides: Partial<LocalEndpoint> = {}) =>
  (dir: string) =>
    formatLocalEndpoint({
      ready: true,
      mqtt: { host: 'pi-host', port: 18883 },
      http: 'http://127.0.0.1:18880/',
      caFile: path.join(dir, 'ca', 'ca.pem'),
      credentialsFile: path.join(dir, 'credentials'),
      region: 'eu-west-1',
      accountId: '123456789012',
      console: 'http://127.0.0.1:18880/console/?token=t',
      ...overrides,
    });

const local = (dir: string) => resolveTarget({ local: dir, env: {}, cwd: root });

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('resolveTarget: AWS', () => {
  it('takes region, key pair and profile from the environment when --local is not given', async () => {
    const env = {
      AWS_DEFAULT_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIA1',
      AWS_SECRET_ACCESS_KEY: 's',
      AWS_SESSION_TOKEN: 't',
      AWS_PROFILE: 'ops',
    };
    expect(await resolveTarget({ env, cwd: root })).toEqual({
      kind: 'aws',
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIA1', secretAccessKey: 's', sessionToken: 't' },
      profile: 'ops',
    });
    expect(await resolveTarget({ region: 'us-west-2', env: {}, cwd: root })).toEqual({
      kind: 'aws',
      region: 'us-west-2',
    });
  });
});

describe('resolveTarget: the local IoT Core', () => {
  it('reads the endpoint file the core writes, and the key pair and CA it points at', async () => {
    const dir = dataDir('running', { credentials: CREDS, endpoint: written() });
    expect(await local(dir)).toEqual({
      kind: 'local',
      dataDir: dir,
      httpEndpoint: 'http://127.0.0.1:18880',
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' },
      caPem: CA,
      caFile: path.join(dir, 'ca', 'ca.pem'),
      mqtt: { host: 'pi-host', port: 18883 },
      consoleUrl: 'http://127.0.0.1:18880/console/?token=t',
    });
  });

  // The CLI paces its control-plane calls to IoT Core's rates unless the core runs --limits off.
  it.each(['aws', 'off'] as const)('reads the quotas mode %s the core records', async (mode) => {
    const dir = dataDir(`limits-${mode}`, { credentials: CREDS, endpoint: written({ limits: { mode, changed: {} } }) });
    expect(await local(dir)).toMatchObject({ kind: 'local', limits: mode });
  });

  it('finds the data directory through PIFLEET_LOCAL, relative to the working directory', async () => {
    const dir = dataDir('by-env', { credentials: CREDS, endpoint: written() });
    const target = await resolveTarget({ env: { PIFLEET_LOCAL: 'by-env' }, cwd: root });
    expect(target).toMatchObject({ kind: 'local', dataDir: dir });
  });

  it('assumes the default listeners when the directory has credentials but no endpoint file', async () => {
    const dir = dataDir('stopped', { credentials: CREDS });
    expect(await local(dir)).toMatchObject({
      httpEndpoint: LOCAL_DEFAULT_ENDPOINTS.http,
      mqtt: LOCAL_DEFAULT_ENDPOINTS.mqtt,
      region: 'us-east-1',
      caFile: path.join(dir, 'ca', 'ca.pem'),
    });
  });

  it('refuses a directory that has neither, with how to start a core there', async () => {
    const dir = dataDir('empty', {});
    const err = await rejection(local(dir));
    expect(err).toBeInstanceOf(TargetConfigError);
    expect(err).toMatchObject({
      message: `${dir} is not a local IoT Core data directory (no credentials, no endpoint.json)`,
      hint: `start it with: pifleet-local-core --data-dir ${dir}`,
    });
  });

  it.each([
    ['not JSON', () => '{"ready":', /: \$: not valid JSON/],
    ['without an http endpoint', () => JSON.stringify({ ready: true }), /: .*http: /],
    ['with an ftp endpoint', written({ http: 'ftp://127.0.0.1:1' }), /: http: /],
  ])('refuses an endpoint file %s, naming it and what is wrong', async (_what, endpoint, problem) => {
    const dir = dataDir(`bad-${_what.replace(/\W+/g, '-')}`, { credentials: CREDS, endpoint });
    const err = await rejection(local(dir));
    expect(err).toBeInstanceOf(TargetConfigError);
    expect(err.message.startsWith(`${path.join(dir, 'endpoint.json')} is not a local IoT Core endpoint file: `)).toBe(
      true,
    );
    expect(err.message).toMatch(problem);
  });

  it.each([
    ['another profile only', '[other]\naws_access_key_id = x\naws_secret_access_key = y\n'],
    ['a profile without a secret', `[${LOCAL_PROFILE}]\naws_access_key_id = x\n`],
  ])('refuses credentials with %s (exit 77 in the CLI)', async (_what, credentials) => {
    const dir = dataDir(`creds-${_what.replace(/\W+/g, '-')}`, { credentials, endpoint: written() });
    const err = await rejection(local(dir));
    expect(err).toBeInstanceOf(CredentialsError);
    expect(err.message).toBe(`no [${LOCAL_PROFILE}] credentials in ${path.join(dir, 'credentials')}`);
  });

  it('refuses an endpoint whose credentials file is gone', async () => {
    const dir = dataDir('creds-gone', { endpoint: written() });
    expect(await rejection(local(dir))).toBeInstanceOf(CredentialsError);
  });

  it('refuses a data directory without its CA certificate', async () => {
    const dir = dataDir('no-ca', { credentials: CREDS, endpoint: written(), ca: false });
    const err = await rejection(local(dir));
    expect(err).toBeInstanceOf(TargetConfigError);
    expect(err.message).toBe(`the local CA certificate ${path.join(dir, 'ca', 'ca.pem')} is missing`);
  });
});
