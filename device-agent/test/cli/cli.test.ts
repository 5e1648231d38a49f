import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { statusMessageSchema } from '@pifleet/protocol';
import type { PublishPacket } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_VERSION } from '../../src/app/agent.js';
import { readAndCheckConfigFile } from '../../src/config/files.js';
import { selfUpdateLayout } from '../../src/jobs/wiring.js';
import { type CliIo, runCli } from '../../src/main.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from '../transport/tls-broker.js';
import { writeAgentDir } from '../update/device.js';

const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/pifleet-agent.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cli-'));
let pki: TestPki;
let other: TestPki;
beforeAll(async () => {
  [pki, other] = await Promise.all([makePki('pi-cli'), makePki('pi-cli-other')]);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.cleanup();
  other?.cleanup();
});
const fileWith = (name: string, text: string | Buffer) => {
  const f = path.join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
};
/** A config nested 10,000 levels deep (60 KB). */
const deepConfig = () =>
  fileWith('deep.json', `{"thingName":"pi-cli","sensors":[${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}]}`);

const io = (env: Record<string, string> = {}) => {
  const out: string[] = [];
  const err: string[] = [];
  const value: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env };
  return { io: value, out, err };
};
const writeConfig = (name: string, o: unknown) => {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(o));
  return file;
};
const good = () => ({
  thingName: 'pi-cli',
  endpoint: 'localhost',
  certFile: pki.certFile,
  keyFile: pki.keyFile,
  caFile: pki.caFile,
  hardware: 'none',
  outbox: { path: path.join(dir, 'outbox.db') },
});

describe('pifleet-agent (in process)', () => {
  it('check-config: 0 for a valid config with good credential files', async () => {
    const t = io();
    expect(await runCli(['check-config', writeConfig('ok.json', good())], t.io)).toBe(0);
    expect(t.out.join('')).toMatch(/ok \(thing pi-cli, MQTT 5/);
  });

  it('check-config: 78 listing every problem, including a key readable by others and a missing cert', async () => {
    const key = path.join(dir, 'open-key.pem');
    writeFileSync(key, readFileSync(pki.keyFile));
    chmodSync(key, 0o644);
    const t = io();
    const file = writeConfig('bad-creds.json', { ...good(), keyFile: key, certFile: path.join(dir, 'missing.pem') });
    expect(await runCli(['check-config', '--json', file], t.io)).toBe(78);
    const result = JSON.parse(t.out.join(''));
    expect(result.issues).toEqual([
      { path: 'certFile', message: expect.stringMatching(/does not exist/) },
      { path: 'keyFile', message: expect.stringMatching(/group or others \(mode 644\)/) },
    ]);
  });

  it.each([
    ['an empty certificate', () => ({ certFile: fileWith('empty.crt', '') }), 'certFile', /is empty/],
    ['a certificate that is not PEM', () => ({ certFile: fileWith('der.crt', 'not a pem') }), 'certFile', /not PEM/],
    ['a key from another pair', () => ({ keyFile: other.keyFile }), 'keyFile', /not the private key of/],
    [
      'the certificate given as the key',
      () => ({ keyFile: fileWith('cert-as-key.pem', readFileSync(pki.certFile)) }),
      'keyFile',
      /holds a certificate, not a private key/,
    ],
    ['"bad host name" as endpoint', () => ({ endpoint: 'bad host name' }), 'endpoint', /contains spaces/],
    ['a URL as endpoint', () => ({ endpoint: 'https://localhost' }), 'endpoint', /is a URL.*use "localhost"/],
    ['a directory as the outbox', () => ({ outbox: { path: dir } }), 'outbox.path', /is a directory/],
  ])('check-config: 78 for %s, with the fix', async (_what, change, where, message) => {
    const t = io();
    expect(
      await runCli(['check-config', '--json', writeConfig('one-bad.json', { ...good(), ...change() })], t.io),
    ).toBe(78);
    expect(JSON.parse(t.out.join('')).issues).toEqual([{ path: where, message: expect.stringMatching(message) }]);
  });

  it('check-config: every problem of the config and of the files it names at once', async () => {
    const t = io();
    const file = writeConfig('all-bad.json', {
      ...good(),
      endpoint: 'https://x.example.com/mqtt',
      batch: { maxReadings: 0 },
      certFile: fileWith('e2.crt', ''),
      keyFile: fileWith('cert-as-key2.pem', readFileSync(pki.certFile)),
      outbox: { path: dir },
    });
    expect(await runCli(['check-config', file], t.io)).toBe(78);
    const text = t.err.join('');
    expect(text).toMatch(/invalid configuration \(5 problems\)/);
    expect(text).toMatch(/batch.maxReadings: /);
    expect(text).toMatch(/endpoint: .* is a URL/);
    expect(text).toMatch(/certFile: .* is empty/);
    expect(text).toMatch(/keyFile: .* holds a certificate/);
    expect(text).toMatch(/outbox.path: .* is a directory/);
  });

  it.runIf(existsSync('/proc/self'))(
    'run: 78 with one line for an outbox whose directory cannot be made (under /proc)',
    async () => {
      const t = io();
      const file = writeConfig('run-proc.json', {
        ...good(),
        outbox: { path: `/proc/pifleet-${process.pid}/x/outbox.db` },
      });
      expect(
        await runCli(['run', '--config', file], { ...t.io, waitForStop: () => new Promise(() => undefined) }),
      ).toBe(78);
      expect(t.err.join('')).toMatch(/^pifleet-agent: cannot create \/proc\/pifleet-\d+.* \(ENOENT\): set outbox.path/);
    },
  );

  it('run: 78 before connecting for a key from another pair', async () => {
    const t = io();
    const file = writeConfig('run-key.json', { ...good(), keyFile: other.keyFile });
    expect(await runCli(['run', '--config', file], { ...t.io, waitForStop: () => new Promise(() => undefined) })).toBe(
      78,
    );
    expect(t.err.join('')).toMatch(/keyFile: .* is not the private key of/);
  });

  it('check-config and run: 78 with the path for a config nested 10,000 levels deep', async () => {
    const deep = deepConfig();
    for (const argv of [
      ['check-config', deep],
      ['run', '--config', deep],
    ]) {
      const t = io();
      expect(await runCli(argv, { ...t.io, waitForStop: () => new Promise(() => undefined) })).toBe(78);
      expect(t.err.join('')).toMatch(/sensors\[0\](\.a){14}: .* nests more than 16 levels deep/);
    }
  });

  it('check-config: 78 for schema problems, env overrides apply', async () => {
    const t = io({ PIFLEET_PORT: 'x' });
    const file = writeConfig('bad.json', { ...good(), thingName: 'bad name!', batch: { maxBytes: 1 } });
    expect(await runCli(['check-config', file], t.io)).toBe(78);
    const text = t.err.join('');
    expect(text).toMatch(/3 problems/);
    expect(text).toMatch(/thingName: invalid thing name/);
    expect(text).toMatch(/batch.maxBytes/);
    expect(text).toMatch(/port: from PIFLEET_PORT/);
  });

  it.each([
    [['bogus'], 64],
    [['check-config'], 64],
    [['run'], 64],
    [['--version'], 0],
    [['print-unit', '--watchdog-sec', '1'], 64],
  ])('%j exits %i', async (argv, code) => {
    expect(await runCli(argv, io().io)).toBe(code);
  });

  it('print-unit takes the outbox directory from the config', async () => {
    const t = io();
    const file = writeConfig('unit.json', { ...good(), outbox: { path: '/data/pifleet/outbox.db' } });
    expect(await runCli(['print-unit', '--config', file, '--exec', '/opt/pifleet/pifleet-agent'], t.io)).toBe(0);
    expect(t.out.join('')).toContain('ReadWritePaths=/data/pifleet\n');
  });

  it('print-unit --self-update: the boot guard from /opt/pifleet, the agent of <outbox dir>/current', async () => {
    const t = io();
    const file = writeConfig('unit-su.json', { ...good(), outbox: { path: '/data/pifleet/outbox.db' } });
    expect(await runCli(['print-unit', '--config', file, '--self-update'], t.io)).toBe(0);
    const unit = t.out.join('');
    expect(unit).toContain(
      'ExecStartPre=-/usr/bin/env node /opt/pifleet/dist/update/boot-guard.js --state-dir /data/pifleet --factory-dir /opt/pifleet\n',
    );
    expect(unit).toContain(
      `ExecStart=/usr/bin/env node /data/pifleet/current/bin/pifleet-agent.js run --config ${file}\n`,
    );
    expect(unit).toContain('ReadWritePaths=/data/pifleet\n');
    // A release refusing the config (78) must still reach the guard's rollback.
    expect(unit).not.toContain('RestartPreventExitStatus');
  });

  it.each([
    ['--exec', ['--exec', '/opt/pifleet/bin/pifleet-agent.js', '--outbox-dir', '/data/pifleet'], /no --exec/],
    ['an in-memory outbox', [], /:memory:/],
  ])('print-unit --self-update with %s exits 64', async (_, extra, message) => {
    const t = io();
    const file = writeConfig('unit-su-bad.json', { ...good(), outbox: { path: ':memory:' } });
    expect(await runCli(['print-unit', '--config', file, '--self-update', ...extra], t.io)).toBe(64);
    expect(t.err.join('')).toMatch(message);
    expect(t.out).toEqual([]);
  });

  it("print-unit --self-update: on first boot the unit's ExecStartPre makes the link its ExecStart runs, and run sees an updatable agent", async () => {
    const stateDir = path.join(dir, 'su-state');
    mkdirSync(stateDir);
    const file = writeConfig('unit-su-boot.json', { ...good(), outbox: { path: path.join(stateDir, 'outbox.db') } });
    const t = io();
    expect(await runCli(['print-unit', '--config', file, '--self-update'], t.io)).toBe(0);
    const line = (key: string) => (new RegExp(`^${key}=(.*)$`, 'm').exec(t.out.join(''))?.[1] ?? '').split(' ');
    const pre = line('ExecStartPre');
    expect(pre.slice(0, 3)).toEqual(['-/usr/bin/env', 'node', '/opt/pifleet/dist/update/boot-guard.js']);
    // The guard's own arguments as printed, but a factory install of our own instead of /opt/pifleet.
    const factoryDir = path.join(dir, 'su-factory');
    writeAgentDir(factoryDir, '1.0.0', 'healthy');
    const args = pre.slice(3).map((a) => (a === '/opt/pifleet' ? factoryDir : a));
    expect(args).toEqual(['--state-dir', stateDir, '--factory-dir', factoryDir]);
    const tsx = createRequire(import.meta.url).resolve('tsx');
    const guard = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/update/boot-guard.ts');
    const r = spawnSync(process.execPath, ['--import', tsx, guard, ...args], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const launcher = line('ExecStart')[2] as string;
    expect(launcher).toBe(path.join(stateDir, 'current/bin/pifleet-agent.js'));
    expect(realpathSync(launcher)).toBe(realpathSync(path.join(factoryDir, 'bin/pifleet-agent.js')));
    const config = await readAndCheckConfigFile(file, {});
    expect(selfUpdateLayout(config, launcher)).toEqual({
      stateDir,
      factoryDir: '/opt/pifleet',
      runningDir: path.join(stateDir, 'current'),
    });
  });

  it('run: exit 78 with a bad config, without connecting anywhere', async () => {
    const t = io();
    expect(await runCli(['run', '--config', writeConfig('run-bad.json', { thingName: 'x' })], t.io)).toBe(78);
  });
});

describe('pifleet-agent (as a process)', () => {
  it('--version prints the agent version and exits 0', () => {
    const r = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(AGENT_VERSION);
  });

  it('check-config exits 78 (not 1) on a config nested 10,000 levels deep', () => {
    const r = spawnSync(process.execPath, [bin, 'check-config', deepConfig()], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/nests more than 16 levels deep/);
    expect(r.stderr).not.toMatch(/Maximum call stack/);
  });

  it('check-config exits 78 on an invalid file', () => {
    const r = spawnSync(process.execPath, [bin, 'check-config', writeConfig('p-bad.json', { port: 'x' })], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/thingName/);
  });

  it('run connects over mutual TLS, publishes retained online status, and on SIGTERM reports offline and exits 0', async () => {
    const broker = await startTlsBroker(pki);
    const statuses: PublishPacket[] = [];
    const online = waitFor<void>(
      'online status',
      (done) =>
        broker.aedes.on('publish', (p) => {
          if (p.topic === 'pifleet/pi-cli/status') {
            statuses.push(p);
            if (statuses.length === 1) done();
          }
        }),
      30_000,
    );
    const file = writeConfig('run.json', {
      ...good(),
      port: broker.port,
      mqtt: { protocol: '3.1.1' },
      shadow: { requestTimeoutMs: 2000 },
      // This broker has no jobs service: the start-next asked at connect is still in flight at
      // SIGTERM (sigterm-jobs-race.test.ts stops with one in flight 90 times).
      outbox: { path: path.join(dir, 'run', 'outbox.db') },
    });
    const child = spawn(process.execPath, [bin, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stdout.on('data', (d: Buffer) => {
      logs += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      logs += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await online;
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    const first = statusMessageSchema.parse(JSON.parse(statuses[0]?.payload.toString() ?? ''));
    expect(first.state).toBe('online');
    expect(statuses[0]?.retain).toBe(true);
    const stoppedAt = Date.now();
    child.kill('SIGTERM');
    expect(await waitFor<number | null>('exit', (done) => void exited.then(done), 15_000)).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    const last = statusMessageSchema.parse(JSON.parse(statuses.at(-1)?.payload.toString() ?? ''));
    expect(last).toMatchObject({ state: 'offline', reason: 'shutdown', bootId: first.bootId });
    expect(logs).not.toMatch(/PRIVATE KEY/);
    await broker.close();
  });
});
