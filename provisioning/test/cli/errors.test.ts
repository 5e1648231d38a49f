import fs from 'node:fs';
import path from 'node:path';
import { formatLocalEndpoint, type LocalEndpoint } from '@pifleet/protocol';
import { removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, closedPort } from '../helpers.js';

/** Error paths that need no running core: not a data dir, core not running, no credentials. */

const root = tempDir('errors');
afterAll(() => removeDir(root));

/** A data directory as a core left it: its CA, maybe credentials, maybe the endpoint file of a core that ran there. */
function fakeDataDir(
  name: string,
  options: { credentials?: string; endpoint?: Pick<LocalEndpoint, 'http' | 'mqtt'> },
): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'ca'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'ca', 'ca.pem'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  if (options.credentials !== undefined) fs.writeFileSync(path.join(dir, 'credentials'), options.credentials);
  if (options.endpoint) {
    const endpoint: LocalEndpoint = {
      ready: true,
      caFile: path.join(dir, 'ca', 'ca.pem'),
      credentialsFile: path.join(dir, 'credentials'),
      region: 'us-east-1',
      accountId: '000000000000',
      console: `${options.endpoint.http}/console/?token=t`,
      ...options.endpoint,
    };
    fs.writeFileSync(path.join(dir, 'endpoint.json'), formatLocalEndpoint(endpoint));
  }
  return dir;
}

const CREDS = '[pifleet-local]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n';

describe('target errors', () => {
  it('a directory that is not a local core data dir is a configuration error (78)', async () => {
    const r = await cli(['--local', path.join(root, 'nothing'), 'things', 'list'], { cwd: root });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(
      /^pifleet: .* is not a local IoT Core data directory .*\(hint: start it with: pifleet-local-core --data-dir /,
    );
  });

  it('PIFLEET_LOCAL selects the local target like --local', async () => {
    const r = await cli(['things', 'list'], { cwd: root, env: { PIFLEET_LOCAL: path.join(root, 'nothing') } });
    expect(r.code).toBe(78);
  });

  it('the core not running: exit 69, one line, how to start it', async () => {
    const port = await closedPort();
    const dir = fakeDataDir('stopped', {
      credentials: CREDS,
      endpoint: { http: `http://127.0.0.1:${port}`, mqtt: { host: '127.0.0.1', port: 1 } },
    });
    const r = await cli(['--local', dir, 'things', 'create', 'pi-1'], { cwd: root });
    expect(r.code).toBe(69);
    expect(r.stderr).toBe(
      `pifleet: cannot reach the local IoT Core (ECONNREFUSED) (hint: is the local core running? start it with: pifleet-local-core --data-dir ${dir})\n`,
    );
    expect(fs.existsSync(path.join(root, 'bundles', 'pi-1'))).toBe(false);
  });

  it('no credentials in the data dir: exit 77', async () => {
    const dir = fakeDataDir('nocreds', {
      credentials: '[other]\naws_access_key_id = x\naws_secret_access_key = y\n',
      endpoint: { http: 'http://127.0.0.1:1', mqtt: { host: '127.0.0.1', port: 1 } },
    });
    const r = await cli(['--local', dir, 'things', 'list'], { cwd: root });
    expect(r.code).toBe(77);
    expect(r.stderr).toMatch(/no \[pifleet-local\] credentials/);
  });

  it('--json errors are one JSON line on stderr', async () => {
    const r = await cli(['--json', '--local', path.join(root, 'nothing'), 'things', 'list'], { cwd: root });
    expect(r.code).toBe(78);
    const line = JSON.parse(r.stderr) as { error: { code: string; exitCode: number; hint: string } };
    expect(line.error).toMatchObject({ code: 'CONFIG', exitCode: 78 });
    expect(r.stdout).toBe('');
  });

  it('help and version exit 0; an unknown command is usage (64)', async () => {
    expect((await cli(['--help'], { cwd: root })).code).toBe(0);
    const v = await cli(['--version'], { cwd: root });
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+/);
    const u = await cli(['thingz'], { cwd: root });
    expect(u.code).toBe(64);
    expect(u.stderr).toMatch(/^pifleet: unknown command 'thingz'/);
  });
});
