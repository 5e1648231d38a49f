import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { killLaunched, launchBin } from '@pifleet/cloud';
import { afterAll, describe, expect, it } from 'vitest';
import { BINS, jsonLog, REPO } from '../src/processes.js';

const FIXTURE = fileURLToPath(new URL('./log-fixture.ts', import.meta.url));

afterAll(() => {
  killLaunched();
});

describe('jsonLog', () => {
  it('parses the JSON lines of stdout once each, skips the rest, and waits for a line to come', async () => {
    const bin = launchBin(FIXTURE, { name: 'log fixture' });
    const log = jsonLog(bin);
    expect(await log.waitFor((l) => l.msg === 'ready', 20_000, 'ready')).toMatchObject({ port: 4242 });
    expect(log.find('starting')).toMatchObject({ n: 1 });
    expect(await log.waitFor((l) => l.msg === 'late', 5_000, 'late')).toMatchObject({ level: 30 });
    expect((await bin.exited).code).toBe(0);
    expect(log.lines().map((l) => l.msg)).toEqual(['starting', 'ready', 'late']);
    expect(bin.output()).toContain('not json: a warning on stdout');
  });

  it('rejects a wait for a line the process never wrote once it exits', async () => {
    const log = jsonLog(launchBin(FIXTURE, { name: 'log fixture' }));
    await expect(log.waitFor((l) => l.msg === 'never', 20_000, '"never"')).rejects.toThrow(
      /log fixture exited \(0\) before "never"/,
    );
  });
});

describe('BINS', () => {
  it('names bins that exist in the workspace', () => {
    expect(existsSync(`${REPO}/pnpm-workspace.yaml`)).toBe(true);
    for (const bin of Object.values(BINS)) expect(existsSync(bin), bin).toBe(true);
  });
});
