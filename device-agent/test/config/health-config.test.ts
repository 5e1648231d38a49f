import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { runCli } from '../../src/main.js';

const base = {
  thingName: 'pi-01',
  endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
  certFile: '/etc/pifleet/cert.pem',
  keyFile: '/etc/pifleet/key.pem',
};
const text = (o: unknown) => JSON.stringify(o);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('config: health section', () => {
  it('defaults to a sample a minute', () => {
    const r = loadConfig({ fileText: text(base) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.health).toEqual({ intervalSeconds: 60 });
    expect(Object.isFrozen(r.value.health)).toBe(true);
  });

  it.each([0, 1, 300, 86_400])('accepts %d seconds (0: off)', (intervalSeconds) => {
    const r = loadConfig({ fileText: text({ ...base, health: { intervalSeconds } }) });
    expect(r.ok && r.value.health.intervalSeconds).toBe(intervalSeconds);
  });

  it.each([
    [-1, 'intervalSeconds must be 0 (health off) or a number of seconds'],
    [1.5, 'intervalSeconds must be an integer'],
    [86_401, 'intervalSeconds must be at most 86400 (a day)'],
    ['60', 'intervalSeconds must be a number'],
  ])('refuses %j with its path', (intervalSeconds, message) => {
    const r = loadConfig({ fileText: text({ ...base, health: { intervalSeconds } }) });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toContainEqual({ path: 'health.intervalSeconds', message });
  });

  it('refuses an unknown key of the section', () => {
    const r = loadConfig({ fileText: text({ ...base, health: { intervalSecs: 30 } }) });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toContain('health');
  });

  it('takes PIFLEET_HEALTH_INTERVAL_SECONDS over the file, and names it when it is bad', () => {
    const file = text({ ...base, health: { intervalSeconds: 600 } });
    const r = loadConfig({ fileText: file, env: { PIFLEET_HEALTH_INTERVAL_SECONDS: '5' } });
    expect(r.ok && r.value.health.intervalSeconds).toBe(5);
    const notInt = loadConfig({ fileText: file, env: { PIFLEET_HEALTH_INTERVAL_SECONDS: 'often' } });
    expect(notInt.ok).toBe(false);
    if (!notInt.ok) {
      expect(notInt.issues).toContainEqual({
        path: 'health.intervalSeconds',
        message: 'from PIFLEET_HEALTH_INTERVAL_SECONDS: "often" is not an integer',
      });
    }
    const negative = loadConfig({ fileText: file, env: { PIFLEET_HEALTH_INTERVAL_SECONDS: '-5' } });
    expect(negative.ok).toBe(false);
    if (!negative.ok) {
      expect(negative.issues).toContainEqual({
        path: 'health.intervalSeconds',
        message: 'intervalSeconds must be 0 (health off) or a number of seconds (from PIFLEET_HEALTH_INTERVAL_SECONDS)',
      });
    }
  });

  it('check-config exits 78 (configuration) for a bad interval', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-health-cli-'));
    dirs.push(dir);
    const file = path.join(dir, 'agent.json');
    writeFileSync(file, text({ ...base, health: { intervalSeconds: -60 } }));
    let err = '';
    const code = await runCli(['check-config', file], { stdout: () => undefined, stderr: (t) => (err += t), env: {} });
    expect(code).toBe(EXIT.config);
    expect(err).toContain('health.intervalSeconds: intervalSeconds must be 0 (health off)');
  });
});
