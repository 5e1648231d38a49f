import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { statusMessageSchema } from '@pifleet/protocol';
import type { PublishPacket } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, runCli } from '../../src/main.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from '../transport/tls-broker.js';

const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/pifleet-agent.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cli-'));
let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-cli');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.cleanup();
});

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
    writeFileSync(key, 'k');
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

  it('run: exit 78 with a bad config, without connecting anywhere', async () => {
    const t = io();
    expect(await runCli(['run', '--config', writeConfig('run-bad.json', { thingName: 'x' })], t.io)).toBe(78);
  });
});

describe('pifleet-agent (as a process)', () => {
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
