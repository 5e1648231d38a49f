import fs from 'node:fs';
import path from 'node:path';
import { type RunningCoreProcess, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startLocalCore } from '../helpers.js';

/** `fleet create` / `fleet delete` against the real local core: interruption, resume, summary, teardown. */

let core: RunningCoreProcess;
let work: string;

beforeAll(async () => {
  core = await startLocalCore(tempDir('fleet-core'));
  work = tempDir('fleet-work');
});

afterAll(async () => {
  await core?.stop();
  removeDir(core.dataDir);
  removeDir(work);
});

interface Summary {
  total: number;
  resumed: number;
  counts: Record<string, number>;
  failed: number;
  interrupted: boolean;
  journal: string;
  thingsPerSecond: number;
}

describe('fleet', () => {
  it('an interrupted create resumes where it stopped, then delete removes everything', async () => {
    const local = ['--local', core.dataDir];
    // Abort once 5 things are done (plain progress lines: one per finished thing).
    const controller = new AbortController();
    let finished = 0;
    const first = await cli(
      [...local, 'fleet', 'create', '--count', '12', '--prefix', 'lab', '--concurrency', '3', '--json'],
      {
        cwd: work,
        signal: controller.signal,
        onStderr: (chunk) => {
          finished += (chunk.match(/^\[\d+\/12\] lab-\d+ /gm) ?? []).length;
          if (finished >= 5) controller.abort();
        },
      },
    );
    expect(first.code).toBe(130);
    const errorLine = JSON.parse(first.stderr.trim().split('\n').at(-1) ?? '') as {
      error: { code: string; hint: string };
    };
    expect(errorLine.error.code).toBe('INTERRUPTED');
    expect(errorLine.error.hint).toMatch(/re-run the same command/);
    const s1 = JSON.parse(first.stdout) as Summary;
    expect(s1.interrupted).toBe(true);
    const done1 = Object.values(s1.counts).reduce((a, b) => a + b, 0);
    expect(done1).toBeGreaterThanOrEqual(5);
    expect(done1).toBeLessThan(12);
    expect(fs.existsSync(s1.journal)).toBe(true);

    const second = await cli([...local, 'fleet', 'create', '--count', '12', '--prefix', 'lab', '--json'], {
      cwd: work,
    });
    expect(second.stderr).not.toMatch(/pifleet:/);
    expect(second.code).toBe(0);
    const s2 = JSON.parse(second.stdout) as Summary;
    expect(s2.resumed).toBe(done1);
    expect(s2.failed).toBe(0);
    expect(s2.resumed + Object.values(s2.counts).reduce((a, b) => a + b, 0)).toBe(12);
    expect(fs.existsSync(s1.journal)).toBe(false); // a finished run leaves no journal behind

    const list = JSON.parse((await cli([...local, 'things', 'list', '--json'], { cwd: work })).stdout) as {
      things: { thingName: string; attributes: Record<string, string> }[];
    };
    const fleet = list.things.filter((t) => t.thingName.startsWith('lab-'));
    expect(fleet.map((t) => t.thingName).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `lab-${String(i + 1).padStart(4, '0')}`),
    );
    expect(fleet.every((t) => t.attributes.fleet === 'lab')).toBe(true);
    for (const t of fleet) {
      expect(fs.statSync(path.join(work, '.pifleet', 'bundles', t.thingName, 'private.pem.key')).mode & 0o777).toBe(
        0o600,
      );
      expect(fs.existsSync(path.join(work, '.pifleet', 'bundles', t.thingName, 'agent.json'))).toBe(true);
    }

    // Re-running a complete fleet changes nothing.
    const third = JSON.parse(
      (await cli([...local, 'fleet', 'create', '--count', '12', '--prefix', 'lab', '--json'], { cwd: work })).stdout,
    ) as Summary;
    expect(third.counts).toEqual({ unchanged: 12 });

    const del = await cli([...local, 'fleet', 'delete', '--prefix', 'lab', '--concurrency', '4', '--json'], {
      cwd: work,
    });
    expect(del.code).toBe(0);
    const sd = JSON.parse(del.stdout) as Summary;
    expect(sd.counts).toEqual({ deleted: 12 });
    const after = JSON.parse((await cli([...local, 'things', 'list', '--json'], { cwd: work })).stdout) as {
      things: { thingName: string }[];
    };
    expect(after.things.filter((t) => t.thingName.startsWith('lab-'))).toEqual([]);
    expect(fs.readdirSync(path.join(work, '.pifleet', 'bundles')).filter((d) => d.startsWith('lab-'))).toEqual([]);
  });

  it('draws a progress bar on a terminal and prints a summary', async () => {
    const r = await cli(['--local', core.dataDir, 'fleet', 'create', '--count', '3', '--prefix', 'tty'], {
      cwd: work,
      isTTY: true,
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\rcreate tty \[#+\] 3\/3/);
    expect(r.stdout).toMatch(/^fleet create tty: 3 things; 3 created\n/);
    expect((await cli(['--local', core.dataDir, 'fleet', 'delete', '--prefix', 'tty'], { cwd: work })).code).toBe(0);
  });

  it("paces a create to the API rates the core enforces (IoT Core's): even 32 at once are never throttled", async () => {
    // Unpaced, the workers passed CreateKeysAndCertificate's 10 per second and, past ~200 things at
    // the default concurrency, the retries (measured with --count 300).
    const r = await cli(
      [
        '--local',
        core.dataDir,
        'fleet',
        'create',
        '--count',
        '40',
        '--prefix',
        'paced',
        '--concurrency',
        '32',
        '--json',
      ],
      { cwd: work },
    );
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Summary).counts).toEqual({ created: 40 });
    expect(r.stderr).not.toMatch(/ThrottlingException/);
  });

  it.each([
    [['fleet', 'create', '--prefix', 'x'], 64, /required option '--count/],
    [['fleet', 'create', '--count', '0', '--prefix', 'x'], 64, /--count must be between/],
    [['fleet', 'create', '--count', '2', '--prefix', 'bad prefix'], 65, /invalid fleet prefix/],
    [['fleet', 'delete'], 64, /required option '--prefix/],
  ])('%j → exit %i', async (argv, code, message) => {
    const r = await cli(['--local', core.dataDir, ...argv], { cwd: work });
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
  });

  it('refuses an --out it cannot make (through a file): exit 65, one line and a hint, nothing created', async () => {
    fs.writeFileSync(path.join(work, 'a-file'), 'x');
    const out = path.join(work, 'a-file', 'bundles');
    const r = await cli(
      ['--local', core.dataDir, 'fleet', 'create', '--count', '2', '--prefix', 'noout', '--out', out],
      {
        cwd: work,
      },
    );
    expect(r.code).toBe(65);
    expect(r.stderr).toBe(
      `pifleet: cannot write into ${out} (ENOTDIR) (hint: choose another --out directory, one this user can create and write)\n`,
    );
    const listed = await cli(['--local', core.dataDir, 'things', 'list', '--json'], { cwd: work });
    expect(listed.stdout).not.toContain('noout-');
  });
});
