import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { SIM_VERSION } from '../src/cli.js';
import { sim } from './helpers.js';

const pkg = JSON.parse(
  readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../package.json'), 'utf8'),
) as { version: string };

describe('pifleet-sim', () => {
  it('--version prints the package version and exits 0', async () => {
    expect(SIM_VERSION).toBe(pkg.version);
    for (const flag of ['--version', '-V']) {
      const r = await sim([flag]);
      expect(r).toEqual({ code: EXIT.ok, stdout: `${pkg.version}\n`, stderr: '' });
    }
  });

  it.each([
    ['--devices', 'x'],
    ['--duration', ''],
    ['--ramp', 'ten'],
  ])('fleet %s %j is a usage error (64) naming the option, before anything starts', async (flag, value) => {
    const r = await sim(['fleet', flag, value]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(
      new RegExp(`option '${flag} <[a-z]+>' argument '.*' is invalid\\. ${flag} must be a number`),
    );
    expect(r.stdout).toBe('');
  });

  it('an unknown option is a usage error (64)', async () => {
    const r = await sim(['--nope']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(/unknown option '--nope'/);
  });
});
