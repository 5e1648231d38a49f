import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readConfigFile } from '../../src/config/files.js';
import { loadConfig } from '../../src/config/load.js';
import { CONFIG_OVERLAY_FILE, configOverlayPath } from '../../src/config/overlay.js';
import { ConfigError } from '../../src/errors.js';
import { runCli } from '../../src/main.js';

const base = {
  thingName: 'pi-01',
  endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
  certFile: '/etc/pifleet/cert.pem',
  keyFile: '/etc/pifleet/key.pem',
  sensors: [{ id: 'env', driver: 'bme280', bus: 1, address: '0x76', intervalMs: 5000 }],
  outputs: [{ id: 'relay', driver: 'digital-output', line: 17 }],
};
const text = (o: unknown) => JSON.stringify(o);
const pem = (type: 'ed25519' | 'ec' | 'rsa') => {
  const { publicKey } =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 1024 })
        : generateKeyPairSync('ed25519');
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
};

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('config: jobs and update sections', () => {
  it('defaults: jobs on, reboot off, no release key, a 120 s health deadline', () => {
    const r = loadConfig({ fileText: text(base) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.jobs).toEqual({ enabled: true, allowReboot: false, requestTimeoutMs: 10_000 });
    expect(r.value.update).toEqual({ publicKeys: [], healthDeadlineSeconds: 120 });
  });

  it('accepts Ed25519 and ECDSA P-256 release keys', () => {
    const keys = [pem('ed25519'), pem('ec')];
    const r = loadConfig({ fileText: text({ ...base, jobs: { allowReboot: true }, update: { publicKeys: keys } }) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.update.publicKeys).toEqual(keys);
    expect(r.value.jobs.allowReboot).toBe(true);
  });

  it('reports every problem of the sections with its path', () => {
    const r = loadConfig({
      fileText: text({
        ...base,
        jobs: { enabled: 'yes', allowReboot: 1, retries: 3 },
        update: { publicKeys: ['not a key', pem('rsa')], healthDeadlineSeconds: 5 },
      }),
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const byPath = Object.fromEntries(r.issues.map((i) => [i.path, i.message]));
    expect(byPath['jobs.enabled']).toBe('jobs.enabled must be true or false');
    expect(byPath['jobs.allowReboot']).toBe('jobs.allowReboot must be true or false');
    expect(byPath.jobs).toMatch(/retries/);
    expect(byPath['update.publicKeys[0]']).toMatch(/^not a PEM public key/);
    expect(byPath['update.publicKeys[1]']).toBe('release keys must be Ed25519 or ECDSA P-256');
    expect(byPath['update.healthDeadlineSeconds']).toBe('healthDeadlineSeconds must be at least 10');
  });
});

describe('config overlay (what config jobs applied, in the state directory)', () => {
  it('lives beside the outbox, and nowhere for an in-memory outbox', () => {
    expect(configOverlayPath('/var/lib/pifleet/outbox.db')).toBe(`/var/lib/pifleet/${CONFIG_OVERLAY_FILE}`);
    expect(configOverlayPath(':memory:')).toBeUndefined();
  });

  it('is merged after the file and before the environment and flags', () => {
    const overlayText = text({
      sampling: { env: 2000 },
      batch: { maxReadings: 9 },
      outputs: { relay: true },
      logLevel: 'debug',
    });
    const r = loadConfig({ fileText: text({ ...base, logLevel: 'warn' }), overlayText });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.sensors[0]?.intervalMs).toBe(2000);
    expect(r.value.batch.maxReadings).toBe(9);
    expect(r.value.outputs[0]?.initial).toBe(true);
    expect(r.value.logLevel).toBe('debug');
    expect(r.overlay?.applied).toEqual(['sampling.env', 'outputs.relay', 'batch.maxReadings', 'logLevel']);
    const env = loadConfig({ fileText: text(base), overlayText, env: { PIFLEET_LOG_LEVEL: 'error' } });
    expect(env.ok && env.value.logLevel).toBe('error');
  });

  it('never stops the agent: what it cannot place or does not validate is ignored and listed', () => {
    const r = loadConfig({
      fileText: text(base),
      overlayText: text({ sampling: { env: 5, gone: 1000 }, outputs: { gone: true }, colour: 'red', logLevel: 'info' }),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.sensors[0]?.intervalMs).toBe(5000);
    expect(r.overlay?.applied).toEqual(['logLevel']);
    expect(r.overlay?.ignored.map((i) => i.path).sort()).toEqual([
      'colour',
      'outputs.gone',
      'sampling.env',
      'sampling.gone',
    ]);
    const broken = loadConfig({ fileText: text(base), overlayText: '{"logLevel":' });
    expect(broken.ok).toBe(true);
    expect(broken.ok && broken.overlay?.ignored[0]?.message).toMatch(/^config overlay ignored/);
    const deep = loadConfig({ fileText: text(base), overlayText: `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}` });
    expect(deep.ok).toBe(true);
  });

  it('readConfigFile finds the overlay beside the outbox the config names', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-overlay-'));
    dirs.push(dir);
    const state = path.join(dir, 'state');
    mkdirSync(state);
    const file = path.join(dir, 'agent.json');
    writeFileSync(file, text({ ...base, outbox: { path: path.join(state, 'outbox.db') } }));
    writeFileSync(path.join(state, CONFIG_OVERLAY_FILE), text({ logLevel: 'trace' }));
    expect((await readConfigFile(file)).logLevel).toBe('trace');
    // An outbox moved by the environment takes its overlay with it.
    const other = path.join(dir, 'other');
    mkdirSync(other);
    expect((await readConfigFile(file, { PIFLEET_OUTBOX_PATH: path.join(other, 'outbox.db') })).logLevel).toBe('info');
    writeFileSync(file, text({ ...base, jobs: { allowReboot: 'yes' } }));
    await expect(readConfigFile(file)).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('pifleet-agent check-config', () => {
  it('exits 78 (configuration) for a bad jobs or update section, naming it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-jobs-cli-'));
    dirs.push(dir);
    const file = path.join(dir, 'agent.json');
    writeFileSync(file, text({ ...base, jobs: { allowReboot: 'yes' }, update: { publicKeys: ['x'] } }));
    let err = '';
    const code = await runCli(['check-config', file], { stdout: () => undefined, stderr: (t) => (err += t), env: {} });
    expect(code).toBe(78);
    expect(err).toContain('jobs.allowReboot: jobs.allowReboot must be true or false');
    expect(err).toContain('update.publicKeys[0]: not a PEM public key');
  });
});
