import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runBootGuard } from '../../src/update/guard.js';
import { nodeFs, syncTree, type UpdateFs } from '../../src/update/layout.js';
import type { UpdateState } from '../../src/update/state.js';
import { createDevice, type Device, writeAgentDir } from './device.js';

const root = mkdtempSync(path.join(tmpdir(), 'pifleet-guard-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function device(): Device {
  return createDevice(path.join(root, `d${++n}`), []);
}

function release(d: Device, version: string): string {
  const dir = path.join(d.stateDir, 'releases', version);
  writeAgentDir(dir, version, 'healthy');
  return dir;
}

function writeState(d: Device, state: Partial<UpdateState>): void {
  const full: UpdateState = {
    format: 1,
    phase: 'verifying',
    jobId: 'job-1',
    version: '2.0.0',
    release: { url: 'http://127.0.0.1/x', manifest: 'e30=', signature: 'AA==' },
    target: path.join(d.stateDir, 'releases/2.0.0'),
    previous: d.factoryDir,
    attempts: 0,
    healthDeadlineMs: 60_000,
    maxStarts: 3,
    deadline: 1_000_000,
    updatedAt: 0,
    ...state,
  };
  writeFileSync(path.join(d.stateDir, 'update.json'), JSON.stringify(full));
}

const readState = (d: Device) => JSON.parse(readFileSync(path.join(d.stateDir, 'update.json'), 'utf8')) as UpdateState;
const guard = (d: Device, now = 0) => runBootGuard({ stateDir: d.stateDir, factoryDir: d.factoryDir, now: () => now });

describe('runBootGuard', () => {
  it('first boot: no link, no state → `current` is the factory install', async () => {
    const d = device();
    expect(await guard(d)).toEqual({ current: d.factoryDir, actions: ['repaired-link'] });
    expect(readlinkSync(d.currentLink)).toBe(d.factoryDir);
    expect(await guard(d)).toEqual({ current: d.factoryDir, actions: ['none'] });
  });

  it.each([
    ['pointing nowhere', (d: Device) => symlinkSync(path.join(d.stateDir, 'releases/9.9.9'), d.currentLink)],
    [
      'pointing at a directory without the launcher',
      (d: Device) => {
        mkdirSync(path.join(d.stateDir, 'releases/broken'), { recursive: true });
        symlinkSync(path.join(d.stateDir, 'releases/broken'), d.currentLink);
      },
    ],
  ])('a link %s goes back to the last good release', async (_name, breakLink) => {
    const d = device();
    const good = release(d, '2.0.0');
    writeState(d, { phase: 'succeeded', lastGood: good });
    breakLink(d);
    expect(await guard(d)).toEqual({ current: good, actions: ['repaired-link'] });
    expect(readlinkSync(d.currentLink)).toBe(good);
  });

  it('a state file that is not ours (corrupt, truncated) is no state: the link is still repaired', async () => {
    const d = device();
    writeFileSync(path.join(d.stateDir, 'update.json'), '{"format":1,"phase":"verif');
    expect(await guard(d)).toEqual({ current: d.factoryDir, actions: ['repaired-link'] });
  });

  it('verifying: counts starts up to maxStarts, then rolls back with the reason', async () => {
    const d = device();
    const target = release(d, '2.0.0');
    symlinkSync(target, d.currentLink);
    writeState(d, { phase: 'verifying' });
    for (const attempts of [1, 2, 3]) {
      expect(await guard(d)).toEqual({ current: target, actions: ['counted-start'] });
      expect(readState(d).attempts).toBe(attempts);
    }
    expect(await guard(d)).toEqual({ current: d.factoryDir, actions: ['rolled-back'] });
    expect(readState(d)).toMatchObject({
      phase: 'rolled-back',
      step: 'rollback',
      reason: { code: 'crashed-at-start' },
    });
  });

  it('verifying past the deadline (a hung release the watchdog killed): rolled back', async () => {
    const d = device();
    const previous = release(d, '1.5.0');
    const target = release(d, '2.0.0');
    symlinkSync(target, d.currentLink);
    writeState(d, { phase: 'verifying', previous, deadline: 5_000 });
    expect(await guard(d, 5_001)).toEqual({ current: previous, actions: ['rolled-back'] });
    expect(readState(d).reason).toEqual({
      code: 'health-deadline',
      message: 'release 2.0.0 did not confirm health within 60 s',
    });
  });

  it('switching with the release present: the switch is completed and its first start counted', async () => {
    const d = device();
    const target = release(d, '2.0.0');
    symlinkSync(d.factoryDir, d.currentLink);
    writeState(d, { phase: 'switching' });
    expect(await guard(d, 10)).toEqual({ current: target, actions: ['completed-switch', 'counted-start'] });
    expect(readState(d)).toMatchObject({ phase: 'verifying', attempts: 1, deadline: 60_010 });
  });

  it('switching or verifying with the release gone: back to the previous one', async () => {
    const d = device();
    symlinkSync(d.factoryDir, d.currentLink);
    writeState(d, { phase: 'switching' });
    expect(await guard(d)).toEqual({ current: d.factoryDir, actions: ['rolled-back'] });
    expect(readState(d).reason?.code).toBe('missing-release');
  });

  it('a previous release that is gone falls back to the factory install', async () => {
    const d = device();
    const target = release(d, '2.0.0');
    symlinkSync(target, d.currentLink);
    writeState(d, { phase: 'rolling-back', previous: path.join(d.stateDir, 'releases/1.0.0-gone') });
    expect(await guard(d)).toEqual({ current: d.factoryDir, actions: ['rolled-back'] });
  });

  it('the guard loads nothing but node: modules and its own three files (no release code, no dependency)', () => {
    const src = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/update');
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(path.join(src, file), 'utf8');
      for (const m of text.matchAll(/^(?:import|export)\b[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/gm)) {
        const spec = (m[1] ?? m[2]) as string;
        if (spec.startsWith('node:')) continue;
        expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[a-z-]+\.js$/);
        visit(spec.slice(2).replace(/\.js$/, '.ts'));
      }
    };
    visit('boot-guard.ts');
    expect([...seen].sort()).toEqual(['boot-guard.ts', 'guard.ts', 'layout.ts', 'state.ts']);
  });

  it('the production entry exits 0 even when it cannot work, so the service still starts', () => {
    const tsx = createRequire(import.meta.url).resolve('tsx');
    const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/update/boot-guard.ts');
    const r = spawnSync(process.execPath, ['--import', tsx, entry], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"msg":"boot guard failed".*usage: boot-guard --state-dir DIR --factory-dir DIR/);
  });
});

describe('syncTree', () => {
  function countingFs(): { fs: UpdateFs; opened: string[] } {
    const opened: string[] = [];
    const fs: UpdateFs = {
      ...nodeFs,
      open: ((file: string, ...rest: unknown[]) => {
        opened.push(path.basename(String(file)));
        return (nodeFs.open as (...a: unknown[]) => ReturnType<UpdateFs['open']>)(file, ...rest);
      }) as UpdateFs['open'],
    };
    return { fs, opened };
  }

  it('flushes an unpacked tree with one syncfs (`sync --file-system`), or fsyncs every file and directory without it', async () => {
    const d = device();
    const tree = release(d, '2.0.0');
    const withSync = countingFs();
    await syncTree(withSync.fs, tree);
    expect(withSync.opened).toEqual([]);

    const without = countingFs();
    const pathBefore = process.env.PATH;
    process.env.PATH = path.join(root, 'no-such-bin');
    try {
      await syncTree(without.fs, tree);
    } finally {
      process.env.PATH = pathBefore;
    }
    // Files (package.json, the launcher, the dependency's index.js) and each directory.
    expect(without.opened).toEqual(
      expect.arrayContaining(['package.json', 'pifleet-agent.js', 'index.js', 'bin', '2.0.0']),
    );
  });
});
