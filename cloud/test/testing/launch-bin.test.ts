import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { killLaunched, launchBin } from '../../src/testing/launch-bin.js';

const FIXTURE = fileURLToPath(new URL('./bin-fixture.ts', import.meta.url));
const run = (...steps: string[]) => launchBin(FIXTURE, { args: steps, name: 'fixture' });

afterAll(() => {
  killLaunched();
});

describe('launchBin', () => {
  it('runs a .ts entry through tsx and collects stdout, stderr, both interleaved and the complete lines', async () => {
    const bin = run('out:one', 'wait:50', 'err:two', 'wait:50', 'out:three', 'exit:3');
    expect(await bin.exited).toEqual({ code: 3, signal: null });
    expect(bin.stdout()).toBe('one\nthree\n');
    expect(bin.stderr()).toBe('two\n');
    expect(bin.output()).toBe('one\ntwo\nthree\n');
    expect(bin.lines()).toEqual(['one', 'three']);
  });

  it('waits for a line printed later, and for what a probe finds', async () => {
    const bin = run('out:starting', 'wait:200', 'out:ready on 4242', 'hang');
    expect(await bin.waitForLine((l) => l.startsWith('ready'), 20_000, 'the ready line')).toBe('ready on 4242');
    const port = await bin.waitFor((b) => /on (\d+)/.exec(b.stdout())?.[1], 1_000, 'a port');
    expect(port).toBe('4242');
  });

  it('rejects a wait when the process exits first, with its output in the message', async () => {
    const bin = run('err:no config', 'exit:78');
    await expect(bin.waitForLine(() => true, 20_000, 'the ready line')).rejects.toThrow(
      /fixture exited \(78\) before the ready line:\nno config/,
    );
  });

  it('rejects a wait after its time, naming what it waited for', async () => {
    const bin = run('out:starting', 'hang');
    await bin.waitForLine((l) => l === 'starting', 20_000, 'the start');
    await expect(bin.waitForLine((l) => l === 'never', 100, 'a line that never comes')).rejects.toThrow(
      /fixture: no a line that never comes within 100 ms:\nstarting/,
    );
    bin.child.kill('SIGKILL');
    expect((await bin.exited).signal).toBe('SIGKILL');
  });

  it('stop() ends a process with SIGTERM, and one that ignores it with SIGKILL after the grace time', async () => {
    const polite = run('out:up', 'wait:60000');
    await polite.waitForLine((l) => l === 'up', 20_000, 'up');
    expect(await polite.stop()).toEqual({ code: null, signal: 'SIGTERM' });

    const stubborn = run('hang', 'out:up');
    await stubborn.waitForLine((l) => l === 'up', 20_000, 'up');
    expect(await stubborn.stop('SIGTERM', 300)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(stubborn.stderr()).toContain('ignoring SIGTERM');
    // Stopping an exited process answers its exit again.
    expect(await stubborn.stop()).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('killLaunched() kills every process still running', async () => {
    const a = run('out:a', 'hang');
    const b = run('out:b', 'hang');
    await a.waitForLine((l) => l === 'a', 20_000, 'a');
    await b.waitForLine((l) => l === 'b', 20_000, 'b');
    killLaunched();
    expect((await a.exited).signal).toBe('SIGKILL');
    expect((await b.exited).signal).toBe('SIGKILL');
  });
});
