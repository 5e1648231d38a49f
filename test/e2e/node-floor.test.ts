import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { BINS, REPO } from '@pifleet/testkit';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * Every bin refuses a Node older than 22.14 with one line and exit 69 (EXIT.unavailable), before it
 * imports anything, and pifleet-agent refuses 32-bit ARM the same way. The old Node is a real one:
 * the first Node 20 on PATH (the machine's, behind the Node this suite runs on), else one
 * scripts/with-node fetches. No 32-bit ARM machine is at hand, so `process.arch` is made to say
 * `arm` by a module preloaded with --import; the bin itself has no test seam.
 */

const bins = [
  ['pifleet-agent', 'device-agent/bin/pifleet-agent.js'],
  ['pifleet', 'provisioning/bin/pifleet.js'],
  ['pifleet-local-core', 'cloud/bin/pifleet-local-core.js'],
  ['pifleet-sim', 'simulator/bin/pifleet-sim.js'],
] as const;
const agent = BINS.agent;
/** A Node 22 before 22.14 (Node-API 10, which better-sqlite3 13 needs), as the bins see it. */
const asNode2213 = `data:text/javascript,${encodeURIComponent("Object.defineProperty(process.versions, 'node', { value: '22.13.0' })")}`;
const as32BitArm = `data:text/javascript,${encodeURIComponent("Object.defineProperty(process, 'arch', { value: 'arm' })")}`;
const armLine =
  'pifleet-agent needs a 64-bit system: aws-crt (its MQTT and TLS client) ships no 32-bit ARM build, and this is ' +
  '32-bit ARM: install the 64-bit Raspberry Pi OS (arm64) - see the README\n';

let oldNode: string;
let oldVersion: string;

function run(node: string, args: string[]) {
  const r = spawnSync(node, args, { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  const found = spawnSync(
    path.join(REPO, 'scripts/with-node'),
    ['--major', '20', 'node', '-p', 'process.execPath + " " + process.versions.node'],
    { encoding: 'utf8', timeout: 180_000 },
  );
  expect(found.status, found.stderr).toBe(0);
  [oldNode = '', oldVersion = ''] = found.stdout.trim().split(' ');
  expect(oldVersion).toMatch(/^20\./);
}, 200_000);

describe('the Node.js floor of every bin', () => {
  it.each(bins)('%s on Node 20: one line saying what to install, exit 69', (name, bin) => {
    const r = run(oldNode, [bin, '--version']);
    expect(r).toEqual({
      code: 69,
      stdout: '',
      stderr:
        `${name} needs Node.js 22.14 or newer (this is v${oldVersion}): install Node.js 24 LTS, ` +
        'or in a pifleet checkout run it through scripts/with-node - see the README\n',
    });
  });

  it.each(bins)('%s on Node 22.13: the same line (the floor is a minor, not only a major)', (name, bin) => {
    const r = run(process.execPath, ['--import', asNode2213, bin, '--version']);
    expect(r).toEqual({
      code: 69,
      stdout: '',
      stderr:
        `${name} needs Node.js 22.14 or newer (this is v22.13.0): install Node.js 24 LTS, ` +
        'or in a pifleet checkout run it through scripts/with-node - see the README\n',
    });
  });

  it.each(bins)('%s runs on this Node (%s)', (_, bin) => {
    const r = run(process.execPath, [bin, '--version']);
    expect(r).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
  });

  it('pifleet-agent on 32-bit ARM: one line saying to install the 64-bit OS, exit 69', () => {
    expect(run(process.execPath, ['--import', as32BitArm, agent, 'run'])).toEqual({
      code: 69,
      stdout: '',
      stderr: armLine,
    });
  });

  it('pifleet-agent on 32-bit ARM with an old Node names the architecture: a newer Node would not help', () => {
    expect(run(oldNode, ['--import', as32BitArm, agent, 'run'])).toEqual({ code: 69, stdout: '', stderr: armLine });
  });
});
