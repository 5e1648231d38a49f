import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '@pifleet/provisioning';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Smoke test of the demo as a newcomer runs it (`pnpm demo`, i.e. `node simulator/bin/pifleet-sim.js demo`):
 * it starts, provisions three things, prints telemetry and the commands to try, follows a desired
 * change made with the `pifleet` CLI, and stops cleanly with exit 0 on Ctrl-C and on --duration.
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pifleet-demo-'));
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly child: ChildProcess;
  out(): string;
  err(): string;
  waitFor(pattern: RegExp, ms: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

function startDemo(args: string[]): Run {
  const child = spawn(
    process.execPath,
    ['simulator/bin/pifleet-sim.js', 'demo', '--data-dir', path.join(dir, 'demo'), ...args],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) w();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    out: () => out,
    err: () => err,
    exited,
    waitFor(pattern, ms) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(pattern);
          if (!m) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`demo did not print ${pattern} in ${ms} ms; stdout:\n${out}\nstderr:\n${err}`));
        }, ms);
        waiters.add(check);
        check();
        void exited.then(() => {
          if (waiters.has(check)) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`demo exited before printing ${pattern}; stdout:\n${out}\nstderr:\n${err}`));
          }
        });
      });
    },
  };
}

describe('pnpm demo', () => {
  it('runs the core and three devices, follows a desired change, and exits 0 on Ctrl-C', async () => {
    const demo = startDemo([]);
    const [, port] = await demo.waitFor(/MQTT \(mTLS\)\s+127\.0\.0\.1:(\d+)/, 20_000);
    expect(Number(port)).toBeGreaterThan(0);
    await demo.waitFor(/Ctrl-C stops everything/, 20_000);
    for (const thing of ['demo-greenhouse', 'demo-cellar', 'demo-attic']) {
      expect(demo.out()).toMatch(new RegExp(`device ${thing}\\s+created`));
    }
    expect(demo.out()).toMatch(/shadow desire demo-greenhouse outputs\.relay=true/);
    expect(demo.out()).toMatch(/web console\s+http:\/\/127\.0\.0\.1:\d+\/console\/\?token=/);
    await demo.waitFor(/demo-greenhouse\s+batch #1\s+\d+ readings │ -?\d+\.\d °C/, 15_000);

    // The printed command, in-process: the pifleet CLI finds the demo's core through its data dir.
    let cliOut = '';
    const code = await runCli(
      ['--local', path.join(dir, 'demo'), 'shadow', 'desire', 'demo-greenhouse', 'outputs.relay=true'],
      { stdout: { write: (s: string) => (cliOut += s) }, stderr: { write: () => true }, cwd: repo },
    );
    expect(code, cliOut).toBe(0);
    await demo.waitFor(/demo-greenhouse\s+reported v\d+ relay=on/, 15_000);

    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(0);
    expect(demo.out()).toMatch(/demo stopped cleanly/);
    // On Node ≥ 22 the AWS SDK has no end-of-support notice to print (nothing filters it any more).
    expect(demo.err()).not.toMatch(/Error|Warning/);
  });

  it('stops by itself after --duration, reusing the things it provisioned before', async () => {
    const demo = startDemo(['--duration', '3']);
    await demo.waitFor(/device demo-greenhouse\s+reused/, 20_000);
    expect(await demo.exited).toBe(0);
    expect(demo.out()).toMatch(/stopping \(after 3 s\)/);
    expect(demo.out()).toMatch(/demo stopped cleanly/);
  });

  it('refuses a bad flag with a usage error', async () => {
    const demo = startDemo(['--duration', 'soon']);
    expect(await demo.exited).toBe(64);
    expect(demo.err()).toMatch(/--duration must be an integer/);
  });
});
