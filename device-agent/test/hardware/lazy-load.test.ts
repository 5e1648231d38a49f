import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tsx = createRequire(import.meta.url).resolve('tsx');

/** Imports modules in a fresh Node process and lists which native hardware packages got loaded. */
async function loadedAfter(code: string): Promise<string[]> {
  const script = `${code}
const { createRequire } = await import('node:module');
const cache = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify(['onoff', 'i2c-bus', 'epoll'].filter((m) => cache.some((k) => k.includes('/node_modules/' + m + '/')))));`;
  const { stdout } = await run(
    process.execPath,
    ['--conditions=@pifleet/source', '--import', tsx, '--input-type=module', '-e', script],
    { cwd: pkgDir, timeout: 20_000 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as string[];
}

describe('native hardware packages load lazily', () => {
  it('importing @pifleet/device-agent and starting the default hardware loads none of them', async () => {
    const loaded = await loadedAfter(`
const m = await import('@pifleet/device-agent');
const hw = m.createHardware({ spec: {}, clock: m.createSystemClock() });
await hw.start();
await hw.stop();`);
    expect(loaded).toEqual([]);
  });

  it('the check sees them when they are loaded (positive control)', async () => {
    const loaded = await loadedAfter(`await import('onoff'); await import('i2c-bus');`);
    expect(loaded).toEqual(['onoff', 'i2c-bus', 'epoll']);
  });
});
