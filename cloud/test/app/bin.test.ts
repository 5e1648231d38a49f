import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateThingCommand, DescribeThingCommand, IoTClient } from '@aws-sdk/client-iot';
import { EXIT } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import { killAll, launchCore, spawnCore } from '../../src/testing/core-process.js';
import { removeDir, tempDir } from '../http/harness.js';

/** The `pifleet-local-core` bin as a process: ready line, kill -9 and restart, clean signals. */

const dirs: string[] = [];

afterAll(() => {
  killAll();
  for (const dir of dirs) removeDir(dir);
});

const start = (dataDir: string) => launchCore(dataDir);

function client(info: LocalCoreInfo): IoTClient {
  // Credentials come from the generated shared-credentials file, as any AWS SDK or CLI reads it.
  process.env.AWS_SHARED_CREDENTIALS_FILE = info.credentialsFile;
  process.env.AWS_CONFIG_FILE = `${info.credentialsFile}.no-config`;
  return new IoTClient({ region: info.region, endpoint: info.http, profile: 'pifleet-local', maxAttempts: 1 });
}

describe('pifleet-local-core', () => {
  it('prints the ready line, keeps state across kill -9, and exits 0 on SIGTERM', async () => {
    const dataDir = tempDir('bin');
    dirs.push(dataDir);
    const first = await start(dataDir);
    expect(first.info).toMatchObject({
      ready: true,
      mqtt: { host: '127.0.0.1', port: expect.any(Number) },
      http: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      region: 'us-east-1',
    });
    expect(first.info.mqtt.port).toBeGreaterThan(0);
    expect(statSync(first.info.credentialsFile).mode & 0o777).toBe(0o600);
    expect(statSync(first.info.caFile).isFile()).toBe(true);

    const iot = client(first.info);
    await iot.send(new CreateThingCommand({ thingName: 'survivor', attributePayload: { attributes: { v: '1' } } }));
    iot.destroy();

    first.child.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const second = await start(dataDir);
    expect(second.info.credentialsFile).toBe(first.info.credentialsFile);
    const again = client(second.info);
    const thing = await again.send(new DescribeThingCommand({ thingName: 'survivor' }));
    expect(thing.attributes).toEqual({ v: '1' });
    again.destroy();

    // The running core records its ready line for tools such as `pifleet --local`, and removes it on stop.
    const endpointFile = join(dataDir, 'endpoint.json');
    expect(JSON.parse(readFileSync(endpointFile, 'utf8'))).toEqual(second.info);
    expect(statSync(endpointFile).mode & 0o777).toBe(0o600);

    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(endpointFile)).toBe(false);
  });

  it('exits 0 on SIGINT', async () => {
    const dataDir = tempDir('bin-int');
    dirs.push(dataDir);
    const started = await start(dataDir);
    started.child.kill('SIGINT');
    expect(await started.exited).toEqual({ code: 0, signal: null });
  });

  it.each([
    ['a bad flag value', ['--mqtt-port', 'abc'], EXIT.config],
    ['a persistent session expiry over 7 days', ['--persistent-session-expiry', '604801'], EXIT.config],
    ['an unknown flag', ['--frobnicate'], EXIT.usage],
  ])('exits with a distinct code and no ready line on %s', async (_label, args, code) => {
    const run = spawnCore(args);
    let stdout = '';
    run.child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    expect((await run.exited).code).toBe(code);
    expect(stdout).toBe('');
    expect(run.stderr()).toMatch(/pifleet-local-core: .+/);
  });

  // Node's recursive mkdir never settled under procfs: the core spun at full CPU and ignored SIGTERM.
  it.runIf(existsSync('/proc/self'))('exits 78 with the reason and a hint on a --data-dir under /proc', async () => {
    const run = spawnCore(['--data-dir', `/proc/pifleet-${process.pid}/data`, '--mqtt-port', '0', '--http-port', '0']);
    const hung = new Promise<'hung'>((resolve) => setTimeout(resolve, 20_000, 'hung').unref());
    const exit = await Promise.race([run.exited, hung]);
    if (exit === 'hung') run.child.kill('SIGKILL');
    expect(exit).toEqual({ code: EXIT.config, signal: null });
    expect(run.stdout()).toBe('');
    const said = run
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('pifleet-local-core: '));
    expect(said).toEqual([
      `pifleet-local-core: data directory /proc/pifleet-${process.pid}/data cannot be created (ENOENT): ` +
        'pass --data-dir a directory on a writable file system (it is created if absent)',
    ]);
  });

  it('exits 78 with one line naming the module when a --hooks module has no handler, before listening', async () => {
    const dataDir = tempDir('bin-hooks');
    dirs.push(dataDir);
    const module = join(dataDir, 'hook.mjs');
    writeFileSync(module, 'export const notTheHandler = 1;\n');
    const run = spawnCore([
      '--data-dir',
      dataDir,
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--hooks',
      `serials=${module}`,
    ]);
    expect(await run.exited).toEqual({ code: EXIT.config, signal: null });
    expect(run.stdout()).toBe('');
    expect(run.stderr()).toContain(`--hooks: serials: ${module} has no exported function 'handler'`);
  });

  it("exits 78 naming the variable when PIFLEET_ALLOWED_SERIALS (the built-in hook's allow-list) is malformed", async () => {
    const dataDir = tempDir('bin-serials');
    dirs.push(dataDir);
    // The child inherits the environment at spawn; the variable is this test's only.
    process.env.PIFLEET_ALLOWED_SERIALS = ' , ';
    let run: ReturnType<typeof spawnCore>;
    try {
      run = spawnCore(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    } finally {
      delete process.env.PIFLEET_ALLOWED_SERIALS;
    }
    expect(await run.exited).toEqual({ code: EXIT.config, signal: null });
    expect(run.stdout()).toBe('');
    expect(run.stderr()).toMatch(/pifleet-local-core: .*PIFLEET_ALLOWED_SERIALS.*pifleet-provisioning-hook/);
  });
});
