import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `.ci/run` is what a newcomer runs: the README's test command, on a pnpm store and caches that
 * start empty. Run here with `npx` replaced on PATH by a script that records each call and the
 * cache settings it saw (installing for real is the README's job, not this test's).
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const script = path.join(repo, '.ci/run');

interface Call {
  args: string;
  store: string;
  cacheDir: string;
  npmCache: string;
  xdgCache: string;
  ci: string;
}

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pifleet-ci-run-'));
  // `pnpm store path` answers with STORE_ANSWER when set, else with the store pnpm would use.
  writeFileSync(
    path.join(dir, 'npx'),
    `#!/usr/bin/env bash
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$*" "\${npm_config_store_dir-}" "\${npm_config_cache_dir-}" "\${npm_config_cache-}" "\${XDG_CACHE_HOME-}" "\${CI-}" >> "${dir}/calls"
if [ "$*" = "-y pnpm@10 store path" ]; then echo "\${STORE_ANSWER:-$npm_config_store_dir/v10}"; fi
`,
  );
  chmodSync(path.join(dir, 'npx'), 0o755);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function runCi(env: Record<string, string> = {}) {
  rmSync(path.join(dir, 'calls'), { force: true });
  const r = spawnSync('bash', [script], {
    cwd: tmpdir(),
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: process.env.HOME ?? dir, TMPDIR: dir, ...env },
  });
  const calls: Call[] = existsSync(path.join(dir, 'calls'))
    ? readFileSync(path.join(dir, 'calls'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => {
          const [args = '', store = '', cacheDir = '', npmCache = '', xdgCache = '', ci = ''] = line.split('\t');
          return { args, store, cacheDir, npmCache, xdgCache, ci };
        })
    : [];
  return { code: r.status, stderr: r.stderr, calls };
}

describe('.ci/run', () => {
  it("ends with exactly the README's test command", () => {
    const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
    const block = /Run the tests[^`]*```sh\n([^\n]+)\n```/.exec(readme);
    expect(block?.[1]).toBeDefined();
    const lines = readFileSync(script, 'utf8').trim().split('\n');
    expect(lines[lines.length - 1]).toBe(block?.[1]);
  });

  it('installs and tests with a fresh pnpm store, metadata cache and npm cache, removed afterwards', () => {
    const r = runCi();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.calls.map((c) => c.args)).toEqual([
      '-y pnpm@10 store path',
      '-y pnpm@10 install --frozen-lockfile',
      '-y pnpm@10 test',
    ]);
    const first = r.calls[0] as Call;
    const fresh = path.dirname(first.store);
    expect(path.dirname(fresh)).toBe(dir); // a new directory under TMPDIR
    for (const c of r.calls) {
      expect(c).toMatchObject({ store: first.store, cacheDir: first.cacheDir, npmCache: first.npmCache, ci: 'true' });
      for (const p of [c.store, c.cacheDir, c.npmCache, c.xdgCache]) expect(p.startsWith(`${fresh}/`)).toBe(true);
    }
    expect(existsSync(fresh)).toBe(false);
  });

  it('stops before installing when pnpm would use another store', () => {
    const r = runCi({ STORE_ANSWER: '/root/.local/share/pnpm/store/v10' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ci: pnpm uses the store \/root\/.local\/share\/pnpm\/store\/v10, not the fresh /);
    expect(r.calls.map((c) => c.args)).toEqual(['-y pnpm@10 store path']);
  });
});
