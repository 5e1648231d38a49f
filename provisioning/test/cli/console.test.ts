import fs from 'node:fs';
import path from 'node:path';
import { localProfileCredentials, type RunningCoreProcess } from '@pifleet/cloud';
import { formatLocalEndpoint } from '@pifleet/protocol';
import { removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, closedPort, localCoreForFile } from '../helpers.js';

/**
 * `pifleet console`'s refusals, before it reaches anything: each is one line, an exit code and a
 * hint. (The console serving an account end to end, against the local core standing in for AWS, is
 * `test/e2e/console-aws.test.ts`.)
 */

const root = tempDir('console-cli');
afterAll(() => removeDir(root));

const AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'eu-west-1' };

describe('pifleet console', () => {
  it.each([
    [[], 64, /^pifleet: pifleet console against AWS needs --api-url \(hint: the stack's ApiUrl output: /],
    [
      ['--api-url', 'https://x.example', '--host', '0.0.0.0'],
      64,
      /--host must be a loopback address .*hint: the console acts with your AWS credentials/,
    ],
    [['--api-url', 'not a url'], 64, /--api-url is not a URL/],
    [['--api-url', 'ftp://x.example'], 64, /--api-url must be a https:\/\/ or http:\/\/ URL/],
    [
      ['--api-url', 'https://x.example', '--ws-url', 'https://x.example/mqtt'],
      64,
      /--ws-url must be a wss:\/\/ or ws:\/\/ URL/,
    ],
    [['--api-url', 'https://x.example', '--silent-after', '0'], 65, /--silent-after must be a number of minutes/],
    [['--api-url', 'https://x.example', '--silent-after', 'soon'], 65, /--silent-after must be a number of minutes/],
    [['--api-url', 'https://x.example', '--port', '-1'], 64, /--port/],
    [['--api-url', 'https://x.example', '--ca-file', 'missing.pem'], 65, /--ca-file .*missing\.pem does not exist/],
  ])('refuses %j with exit %i', async (args, code, message) => {
    const r = await cli(['console', ...args], { cwd: root, env: AWS_ENV });
    expect(r.code).toBe(code);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('without a region anywhere: exit 64 naming the ways to give one', async () => {
    const { AWS_REGION: _none, ...env } = AWS_ENV;
    const r = await cli(['console', '--api-url', 'https://x.example'], {
      cwd: root,
      // No profile file can supply a region either.
      env: { ...env, AWS_CONFIG_FILE: path.join(root, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(root, 'none') },
    });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/^pifleet: no AWS region: give --region, or set AWS_REGION/);
  });

  it('an unreachable account: exit 69 with what to check', async () => {
    const port = await closedPort();
    const r = await cli(
      [
        'console',
        '--api-url',
        `http://127.0.0.1:${port}/api`,
        '--ws-url',
        `wss://127.0.0.1:${port}/mqtt`,
        '--port',
        '0',
      ],
      {
        cwd: root,
        env: {
          ...AWS_ENV,
          AWS_ENDPOINT_URL_IOT: `http://127.0.0.1:${port}`,
          AWS_ENDPOINT_URL_IOT_DATA_PLANE: `http://127.0.0.1:${port}`,
        },
      },
    );
    expect(r.code).toBe(69);
    expect(r.stderr).toMatch(
      /^pifleet: the console could not reach the account: ListThings failed: .*ECONNREFUSED.*\(hint: check the credentials/,
    );
  });

  it('--local prints the URL of the console the local core serves', async () => {
    const dir = path.join(root, 'core');
    fs.mkdirSync(path.join(dir, 'ca'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'ca', 'ca.pem'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    fs.writeFileSync(
      path.join(dir, 'credentials'),
      '[pifleet-local]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n',
    );
    fs.writeFileSync(
      path.join(dir, 'endpoint.json'),
      formatLocalEndpoint({
        ready: true,
        caFile: path.join(dir, 'ca', 'ca.pem'),
        credentialsFile: path.join(dir, 'credentials'),
        region: 'us-east-1',
        accountId: '000000000000',
        console: 'http://127.0.0.1:8880/console/?token=abc',
        http: 'http://127.0.0.1:8880',
        mqtt: { host: '127.0.0.1', port: 8883 },
      }),
    );
    const r = await cli(['--local', dir, 'console'], { cwd: root });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('The local IoT Core serves its console: http://127.0.0.1:8880/console/?token=abc\n');
    const j = await cli(['--local', dir, 'console', '--json'], { cwd: root });
    expect(JSON.parse(j.stdout)).toEqual({ url: 'http://127.0.0.1:8880/console/?token=abc', target: 'local' });
  });
});

describe('pifleet console, refused by the account', () => {
  let core: RunningCoreProcess;
  const files = localCoreForFile((c) => {
    core = c;
  });

  it.each([
    ['an unknown key', { AWS_ACCESS_KEY_ID: 'AKIANOBODY', AWS_SECRET_ACCESS_KEY: 'secret' }],
    ['a wrong secret', undefined],
  ])('%s: exit 77, the service named, before any WebSocket', async (_what, keys) => {
    const { accessKeyId } = await localProfileCredentials(core.info)();
    const env = {
      ...(keys ?? { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: 'not-the-secret' }),
      AWS_REGION: core.info.region,
      AWS_ENDPOINT_URL_IOT: core.info.http,
      AWS_ENDPOINT_URL_IOT_DATA_PLANE: core.info.http,
    };
    const r = await cli(
      [
        'console',
        '--api-url',
        `${core.info.http}/api`,
        '--ws-url',
        core.info.ws,
        '--ca-file',
        core.info.caFile,
        '--port',
        '0',
      ],
      { cwd: files.cwd(), env },
    );
    expect(r.code).toBe(77);
    expect(r.stderr).toMatch(
      /^pifleet: AWS refused the credentials: ListThings failed: \w+: .*\(hint: check AWS_PROFILE/,
    );
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it("a WebSocket endpoint it cannot trust (no --ca-file for the core's CA): exit 69, naming the endpoint", async () => {
    const { accessKeyId, secretAccessKey } = await localProfileCredentials(core.info)();
    const r = await cli(['console', '--api-url', `${core.info.http}/api`, '--ws-url', core.info.ws, '--port', '0'], {
      cwd: files.cwd(),
      env: {
        AWS_ACCESS_KEY_ID: accessKeyId,
        AWS_SECRET_ACCESS_KEY: secretAccessKey,
        AWS_REGION: core.info.region,
        AWS_ENDPOINT_URL_IOT: core.info.http,
        AWS_ENDPOINT_URL_IOT_DATA_PLANE: core.info.http,
      },
    });
    expect(r.code).toBe(69);
    expect(r.stderr).toContain(`cannot connect to ${core.info.ws}: unable to verify the first certificate`);
  });
});
