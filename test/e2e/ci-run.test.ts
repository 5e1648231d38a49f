import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `.ci/run` is what a newcomer runs: the README's test command, on a pnpm store and caches that
 * start empty, on Node 24; then the tests again on Node 22. Run here with `npx` replaced on PATH by
 * a script that records each call, the cache settings and the Node it saw, and with a Node 24 and a
 * Node 22 on PATH that only tell their version (installing for real is the README's job, and
 * fetching Node scripts/with-node's, tested on its own).
 */

const script = path.join(REPO, '.ci/run');

interface Call {
  args: string;
  store: string;
  cacheDir: string;
  npmCache: string;
  xdgCache: string;
  ci: string;
  node: string;
}

let dir: string;

beforeAll(() => {
  dir = tempDir('ci-run');
  // `pnpm store path` answers with STORE_ANSWER when set, else with the store pnpm would use.
  writeFileSync(
    path.join(dir, 'npx'),
    `#!/usr/bin/env bash
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$*" "\${npm_config_store_dir-}" "\${npm_config_cache_dir-}" "\${npm_config_cache-}" "\${XDG_CACHE_HOME-}" "\${CI-}" "$(node -p process.versions.node)" >> "${dir}/calls"
if [ "$*" = "-y pnpm@10 store path" ]; then echo "\${STORE_ANSWER:-$npm_config_store_dir/v10}"; fi
if [ "$*" = "\${FAIL_ON-}" ]; then exit 3; fi
`,
  );
  chmodSync(path.join(dir, 'npx'), 0o755);
  for (const version of ['24.0.0', '22.0.0']) {
    const node = path.join(dir, `node${version.split('.')[0]}`, 'node');
    mkdirSync(path.dirname(node));
    writeFileSync(
      node,
      `#!/usr/bin/env bash\n[ "$2" = process.versions.node ] && echo ${version} || echo "${version} linux x64"\n`,
    );
    chmodSync(node, 0o755);
  }
});

afterAll(() => {
  removeDir(dir);
});

function runCi(env: Record<string, string> = {}) {
  rmSync(path.join(dir, 'calls'), { force: true });
  const r = spawnSync('bash', [script], {
    cwd: tmpdir(),
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: `${dir}:${dir}/node24:${dir}/node22:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: process.env.HOME ?? dir,
      TMPDIR: dir,
      ...env,
    },
  });
  const calls: Call[] = existsSync(path.join(dir, 'calls'))
    ? readFileSync(path.join(dir, 'calls'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => {
          const [args = '', store = '', cacheDir = '', npmCache = '', xdgCache = '', ci = '', node = ''] =
            line.split('\t');
          return { args, store, cacheDir, npmCache, xdgCache, ci, node };
        })
    : [];
  return { code: r.status, stderr: r.stderr, calls };
}

describe('.ci/run', () => {
  it("runs the README's test command as written", () => {
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const block = /Run the tests[^`]*```sh\n([^\n]+)\n```/.exec(readme);
    expect(block?.[1]).toBeDefined();
    expect(readFileSync(script, 'utf8').split('\n')).toContain(`${block?.[1]} || exit`);
  });

  it('installs and tests on Node 24, then tests on Node 22 with the addons rebuilt, all on fresh caches removed afterwards', () => {
    const r = runCi();
    expect(r.code).toBe(0);
    // scripts/with-node says which Node each step runs with.
    expect(r.stderr.trim().split('\n')).toEqual([
      ...Array(2).fill(`with-node: Node v24.0.0 (${dir}/node24/node, on PATH; PIFLEET_NODE_MAJOR=24)`),
      ...Array(2).fill(`with-node: Node v22.0.0 (${dir}/node22/node, on PATH; PIFLEET_NODE_MAJOR=22)`),
    ]);
    expect(r.calls.map((c) => [c.args, c.node])).toEqual([
      ['-y pnpm@10 store path', '24.0.0'],
      ['-y pnpm@10 install --frozen-lockfile', '24.0.0'],
      ['-y pnpm@10 test', '24.0.0'],
      ['-y pnpm@10 -r rebuild', '22.0.0'],
      ['-y pnpm@10 test:unit', '22.0.0'],
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

  it.each([
    ['-y pnpm@10 install --frozen-lockfile', 2],
    ['-y pnpm@10 test', 3],
    ['-y pnpm@10 -r rebuild', 4],
  ])('stops at a failing step (%s) and cleans up', (step, calls) => {
    const r = runCi({ FAIL_ON: step });
    expect(r.code).toBe(3);
    expect(r.calls.map((c) => c.args)).toHaveLength(calls);
    expect(r.calls.at(-1)?.args).toBe(step);
    expect(existsSync(path.dirname((r.calls[0] as Call).store))).toBe(false);
  });

  it('stops before installing when pnpm would use another store', () => {
    const r = runCi({ STORE_ANSWER: '/root/.local/share/pnpm/store/v10' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ci: pnpm uses the store \/root\/.local\/share\/pnpm\/store\/v10, not the fresh /);
    expect(r.calls.map((c) => c.args)).toEqual(['-y pnpm@10 store path']);
  });
});
