import path from 'node:path';
import { runCli } from '@pifleet/provisioning';
import { BINS, killLaunched, type LaunchedBin, launchBin, REPO, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Smoke test of the demo as a newcomer runs it (`pnpm demo`, i.e. `node simulator/bin/pifleet-sim.js demo`):
 * it starts, provisions three things, connects them over MQTT 5, prints telemetry and the commands
 * to try, follows a desired change made with the `pifleet` CLI, and stops cleanly with exit 0 on
 * Ctrl-C and on --duration.
 */

let dir: string;

beforeAll(() => {
  dir = tempDir('demo');
});

afterAll(() => {
  killLaunched();
  removeDir(dir);
});

function startDemo(args: string[]): LaunchedBin {
  return launchBin(BINS.sim, {
    args: ['demo', '--data-dir', path.join(dir, 'demo'), ...args],
    cwd: REPO,
    name: 'demo',
  });
}

/** Resolves with the match of `pattern` in what the demo printed; rejects on its exit or after `ms`. */
function printed(demo: LaunchedBin, pattern: RegExp, ms: number): Promise<RegExpMatchArray> {
  return demo.waitFor((d) => d.stdout().match(pattern) ?? undefined, ms, `${pattern}`);
}

describe('pnpm demo', () => {
  it('runs the core and three devices, follows a desired change, and exits 0 on Ctrl-C', async () => {
    const demo = startDemo([]);
    const [, port] = await printed(demo, /MQTT \(mTLS\)\s+127\.0\.0\.1:(\d+)/, 20_000);
    expect(Number(port)).toBeGreaterThan(0);
    await printed(demo, /Ctrl-C stops everything/, 20_000);
    for (const thing of ['demo-greenhouse', 'demo-cellar', 'demo-attic']) {
      // Each device says the protocol its transport speaks: MQTT 5, as a Pi does to AWS IoT Core.
      expect(demo.stdout()).toMatch(new RegExp(`device ${thing}\\s+created · .* · MQTT 5 · bundle `));
    }
    expect(demo.stdout()).toMatch(/shadow desire demo-greenhouse outputs\.relay=true/);
    expect(demo.stdout()).toMatch(/web console\s+http:\/\/127\.0\.0\.1:\d+\/console\/\?token=/);
    await printed(demo, /demo-greenhouse\s+batch #1\s+\d+ readings │ -?\d+\.\d °C/, 15_000);

    // The printed command, in-process: the pifleet CLI finds the demo's core through its data dir.
    let cliOut = '';
    const code = await runCli(
      ['--local', path.join(dir, 'demo'), 'shadow', 'desire', 'demo-greenhouse', 'outputs.relay=true'],
      { stdout: { write: (s: string) => (cliOut += s) }, stderr: { write: () => true }, cwd: REPO },
    );
    expect(code, cliOut).toBe(0);
    await printed(demo, /demo-greenhouse\s+reported v\d+ relay=on/, 15_000);

    demo.child.kill('SIGINT');
    expect((await demo.exited).code).toBe(0);
    expect(demo.stdout()).toMatch(/demo stopped cleanly/);
    // On Node ≥ 22 the AWS SDK has no end-of-support notice to print (nothing filters it any more).
    expect(demo.stderr()).not.toMatch(/Error|Warning/);
  });

  it('stops by itself after --duration, reusing the things it provisioned before', async () => {
    const demo = startDemo(['--duration', '3']);
    await printed(demo, /device demo-greenhouse\s+reused/, 20_000);
    expect((await demo.exited).code).toBe(0);
    expect(demo.stdout()).toMatch(/stopping \(after 3 s\)/);
    expect(demo.stdout()).toMatch(/demo stopped cleanly/);
  });

  it('refuses a bad flag with a usage error', async () => {
    const demo = startDemo(['--duration', 'soon']);
    expect((await demo.exited).code).toBe(64);
    expect(demo.stderr()).toMatch(/--duration must be an integer/);
  });
});
