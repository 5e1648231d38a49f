import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { checkReleaseArtifact, EXIT, releaseFileNames, releaseKeyId, verifyReleaseManifest } from '@pifleet/protocol';
import { removeDir, tempDir } from '@pifleet/testkit';
import { list } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELEASE_MTIME } from '../../src/adapters/release-tarball.js';
import { KEY_FILES } from '../../src/core/release-keys.js';
import { cli } from '../helpers.js';

/**
 * `pifleet release build`: a release the device's checks accept (protocol's verify), byte for byte
 * the same from the same directory, and refusals that leave nothing behind.
 */

const root = tempDir('release');
afterAll(() => removeDir(root));
let n = 0;
const fresh = () => {
  const dir = path.join(root, `w${++n}`);
  fs.mkdirSync(dir);
  return dir;
};

/** A directory shaped like the `pnpm deploy` output: package.json, the launcher, node_modules with a pnpm link. */
function agentDir(dir: string, extra = ''): string {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'node_modules/.pnpm/zod@4.0.0/node_modules/zod'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: '@pifleet/device-agent', version: '0.1.0' }));
  fs.writeFileSync(path.join(dir, 'bin/pifleet-agent.js'), '#!/usr/bin/env node\nimport("../dist/main.js");\n');
  fs.chmodSync(path.join(dir, 'bin/pifleet-agent.js'), 0o755);
  fs.writeFileSync(path.join(dir, 'dist/main.js'), `export const main = 1;${extra}\n`);
  fs.writeFileSync(path.join(dir, 'node_modules/.pnpm/zod@4.0.0/node_modules/zod/index.js'), 'export {};\n');
  fs.symlinkSync('.pnpm/zod@4.0.0/node_modules/zod', path.join(dir, 'node_modules/zod'));
  return dir;
}

let keys: string;
let publicPem: string;
let agent: string;
beforeAll(async () => {
  keys = fresh();
  const made = await cli(['keys', 'create', '--out', '.'], { cwd: keys });
  expect(made.code).toBe(EXIT.ok);
  publicPem = fs.readFileSync(path.join(keys, KEY_FILES.publicKey), 'utf8');
  agent = agentDir(path.join(root, 'agent'));
});
const keyFile = () => path.join(keys, KEY_FILES.privateKey);
const build = (cwd: string, ...args: string[]) =>
  cli(['release', 'build', '--from', agent, '--key', keyFile(), ...args], { cwd });

interface Built {
  version: string;
  tarball: string;
  manifest: string;
  signature: string;
  sha256: string;
  size: number;
  entries: number;
  keyId: string;
  algorithm: string;
}

describe('release build', () => {
  it('writes tarball, manifest and signature that the device-side checks accept', async () => {
    const cwd = fresh();
    const r = await build(cwd, '--version', '1.4.0', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    const built = JSON.parse(r.stdout) as Built;
    const names = releaseFileNames('1.4.0');
    const dir = path.join(cwd, '.pifleet/releases');
    expect(built).toMatchObject({
      version: '1.4.0',
      tarball: path.join(dir, names.tarball),
      manifest: path.join(dir, names.manifest),
      signature: path.join(dir, names.signature),
      algorithm: 'ed25519',
      keyId: releaseKeyId(publicPem),
    });
    expect(fs.readdirSync(dir).sort()).toEqual(Object.values(names).sort());

    const manifestBytes = fs.readFileSync(built.manifest);
    const signature = fs.readFileSync(built.signature);
    const verified = verifyReleaseManifest(manifestBytes, signature, [publicPem], '1.4.0');
    if (!verified.ok) throw new Error(verified.rejection.message);
    const tarball = fs.readFileSync(built.tarball);
    const measured = { sha256: createHash('sha256').update(tarball).digest('hex'), size: tarball.byteLength };
    expect(measured).toEqual({ sha256: built.sha256, size: built.size });
    expect(checkReleaseArtifact(verified.manifest, measured)).toBeUndefined();
    expect(verified.manifest.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('packs every entry relative, sorted, with one mtime, no owner, the launcher executable and the pnpm link kept', async () => {
    const cwd = fresh();
    const built = JSON.parse((await build(cwd, '--version', '1.4.1', '--json')).stdout) as Built;
    const entries: { path: string; type: string; mtime?: Date; mode?: number; uid?: number; linkpath?: string }[] = [];
    await list({ file: built.tarball, onReadEntry: (e) => entries.push(e) });
    const paths = entries.map((e) => e.path.replace(/\/$/, ''));
    expect(paths).toEqual([
      'bin',
      'bin/pifleet-agent.js',
      'dist',
      'dist/main.js',
      'node_modules',
      'node_modules/.pnpm',
      'node_modules/.pnpm/zod@4.0.0',
      'node_modules/.pnpm/zod@4.0.0/node_modules',
      'node_modules/.pnpm/zod@4.0.0/node_modules/zod',
      'node_modules/.pnpm/zod@4.0.0/node_modules/zod/index.js',
      'node_modules/zod',
      'package.json',
    ]);
    expect(built.entries).toBe(paths.length);
    // node-tar's portable mode writes no directory mtime (0); every file and link gets the fixed one.
    for (const e of entries) {
      expect(e.mtime?.getTime(), e.path).toBe(e.type === 'Directory' ? undefined : RELEASE_MTIME.getTime());
      expect(e.uid ?? 0, e.path).toBe(0);
    }
    const byPath = new Map(entries.map((e) => [e.path.replace(/\/$/, ''), e]));
    expect((byPath.get('bin/pifleet-agent.js')?.mode ?? 0) & 0o111).toBe(0o111);
    expect(byPath.get('node_modules/zod')).toMatchObject({
      type: 'SymbolicLink',
      linkpath: '.pnpm/zod@4.0.0/node_modules/zod',
    });
  });

  it('packs hard-linked files (pnpm deploy links identical files, to its store too) as regular files', async () => {
    // pnpm's layout: one stored file hard-linked into several packages, its store copy outside.
    const linked = agentDir(path.join(root, 'agent-linked'));
    const store = path.join(root, 'store-file.d.ts');
    fs.writeFileSync(store, 'export {};\n');
    for (let i = 0; i < 6; i++) {
      const pkg = path.join(linked, `node_modules/.pnpm/p${i}@1.0.0/node_modules/p${i}/types/ts3.4`);
      fs.mkdirSync(pkg, { recursive: true });
      fs.linkSync(store, path.join(pkg, 'index.d.ts'));
      fs.linkSync(store, path.join(pkg, '..', 'index.d.ts'));
      fs.writeFileSync(path.join(pkg, 'own.d.ts'), `export const p${i} = ${i};\n`);
    }
    expect(fs.statSync(store).nlink).toBe(13);
    const cwd = fresh();
    const r = await cli(['release', 'build', '--from', linked, '--key', keyFile(), '--version', '1.0.0', '--json'], {
      cwd,
    });
    expect(r.code).toBe(EXIT.ok);
    const built = JSON.parse(r.stdout) as Built;
    const files = new Map<string, { type: string; size: number }>();
    await list({
      file: built.tarball,
      onReadEntry: (e) => void files.set(e.path, { type: e.type, size: e.size ?? 0 }),
    });
    const links = [...files].filter(([p]) => p.endsWith('index.d.ts'));
    expect(links).toHaveLength(12);
    for (const [, f] of links) expect(f).toEqual({ type: 'File', size: 'export {};\n'.length });
  });

  it('packs the same directory to the same bytes, whatever its files’ times', async () => {
    const a = JSON.parse((await build(fresh(), '--version', '2.0.0', '--json')).stdout) as Built;
    const later = new Date('2030-01-01T00:00:00Z');
    fs.utimesSync(path.join(agent, 'dist/main.js'), later, later);
    const b = JSON.parse((await build(fresh(), '--version', '2.0.0', '--json')).stdout) as Built;
    expect(b.sha256).toBe(a.sha256);
    expect(fs.readFileSync(b.tarball).equals(fs.readFileSync(a.tarball))).toBe(true);
  });

  it('a tampered tarball fails the signed SHA-256; a tampered manifest fails the signature', async () => {
    const cwd = fresh();
    const built = JSON.parse((await build(cwd, '--version', '1.5.0-rc.1', '--json')).stdout) as Built;
    const manifestBytes = fs.readFileSync(built.manifest);
    const signature = fs.readFileSync(built.signature);
    const verified = verifyReleaseManifest(manifestBytes, signature, [publicPem], '1.5.0-rc.1');
    if (!verified.ok) throw new Error(verified.rejection.message);
    const tarball = fs.readFileSync(built.tarball);
    tarball[100] = (tarball[100] ?? 0) ^ 0xff;
    const measured = { sha256: createHash('sha256').update(tarball).digest('hex'), size: tarball.byteLength };
    expect(checkReleaseArtifact(verified.manifest, measured)?.code).toBe('sha256-mismatch');

    const forged = Buffer.from(manifestBytes.toString('utf8').replace(built.sha256, measured.sha256));
    const refused = verifyReleaseManifest(forged, signature, [publicPem], '1.5.0-rc.1');
    expect(refused.ok ? undefined : refused.rejection.code).toBe('bad-signature');
  });

  it('signs with an ECDSA P-256 key too', async () => {
    const dir = fresh();
    expect((await cli(['keys', 'create', '--algorithm', 'ecdsa-p256', '--out', '.'], { cwd: dir })).code).toBe(0);
    const cwd = fresh();
    const r = await cli(
      [
        'release',
        'build',
        '--from',
        agent,
        '--key',
        path.join(dir, KEY_FILES.privateKey),
        '--version',
        '1.0.0',
        '--json',
      ],
      { cwd },
    );
    expect(r.code).toBe(EXIT.ok);
    const built = JSON.parse(r.stdout) as Built;
    expect(built.algorithm).toBe('ecdsa-p256-sha256');
    const pub = fs.readFileSync(path.join(dir, KEY_FILES.publicKey), 'utf8');
    const v = verifyReleaseManifest(fs.readFileSync(built.manifest), fs.readFileSync(built.signature), [pub], '1.0.0');
    expect(v.ok).toBe(true);
  });

  it('prints the files and the upload command that comes next', async () => {
    const cwd = fresh();
    const r = await build(cwd, '--version', '3.0.0');
    expect(r.code).toBe(EXIT.ok);
    const names = releaseFileNames('3.0.0');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^release 3\.0\.0: 12 entries, \d+ bytes, sha256 [0-9a-f]{64}$/);
    expect(lines[1]).toBe(`signed with ed25519 key ${releaseKeyId(publicPem)}`);
    expect(lines[2]).toBe(
      `runs on ${process.platform}-${process.arch}, Node ABI ${process.versions.modules} (this machine's: no native modules found)`,
    );
    expect(lines.at(-1)).toBe(
      `next: pifleet release upload ${Object.values(names)
        .map((f) => `.pifleet/releases/${f}`)
        .join(' ')} --bucket BUCKET`,
    );
  });

  describe('refusals: exit code, one line, and nothing written', () => {
    const rsa = () => {
      const file = path.join(root, 'rsa.pem');
      if (!fs.existsSync(file)) {
        const pair = generateKeyPairSync('rsa', {
          modulusLength: 2048,
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
          publicKeyEncoding: { type: 'spki', format: 'pem' },
        });
        fs.writeFileSync(file, pair.privateKey);
      }
      return file;
    };
    it.each<[string, () => string[], number, RegExp]>([
      [
        'a version that is not semver',
        () => ['--version', '1.4'],
        EXIT.usage,
        /--version "1\.4" is not a semantic version/,
      ],
      [
        'a directory that is not the deployed agent',
        () => ['--version', '1.0.0', '--from', root],
        EXIT.dataError,
        /is not the deployed agent \(no package\.json of @pifleet\/device-agent\) \(hint: give the `pnpm deploy` output/,
      ],
      [
        'a missing directory',
        () => ['--version', '1.0.0', '--from', path.join(root, 'nope')],
        EXIT.dataError,
        /nope is not a directory/,
      ],
      [
        'the public key as --key',
        () => ['--version', '1.0.0', '--key', path.join(keys, KEY_FILES.publicKey)],
        EXIT.dataError,
        /is not a PEM private key \(hint: give the private key/,
      ],
      [
        'an RSA key',
        () => ['--version', '1.0.0', '--key', rsa()],
        EXIT.dataError,
        /is neither an Ed25519 nor an ECDSA P-256 key/,
      ],
      [
        'a missing key',
        () => ['--version', '1.0.0', '--key', path.join(root, 'none.pem')],
        EXIT.dataError,
        /cannot read the signing key .*none\.pem \(ENOENT\)/,
      ],
    ])('%s', async (_label, args, code, message) => {
      const cwd = fresh();
      // Later options win in commander, so the case's --from/--key replace build()'s.
      const r = await build(cwd, ...args());
      expect(r.code).toBe(code);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(fs.readdirSync(cwd)).toEqual([]);
    });

    it('a version already built: exit 65, the release untouched', async () => {
      const cwd = fresh();
      const first = JSON.parse((await build(cwd, '--version', '1.0.0', '--json')).stdout) as Built;
      const before = fs.readFileSync(first.manifest);
      const again = await build(cwd, '--version', '1.0.0');
      expect(again.code).toBe(EXIT.dataError);
      expect(again.stderr).toMatch(
        /exists; a release is never rebuilt under the same version \(hint: give a new --version/,
      );
      expect(fs.readFileSync(first.manifest).equals(before)).toBe(true);
    });

    it('a link out of the directory: exit 65, no tarball', async () => {
      const outside = agentDir(path.join(root, 'agent-out'));
      fs.symlinkSync('../../etc', path.join(outside, 'dist/etc'));
      const cwd = fresh();
      const r = await cli(['release', 'build', '--from', outside, '--key', keyFile(), '--version', '1.0.0'], { cwd });
      expect(r.code).toBe(EXIT.dataError);
      expect(r.stderr).toMatch(/dist\/etc links outside the release directory \(\.\.\/\.\.\/etc\)/);
      expect(fs.readdirSync(cwd)).toEqual([]);
    });
  });
});

/** An ELF shared object's first bytes with `e_machine`, and the ABI symbol a V8-API module exports. */
function elf(machine: number, abi?: number): Buffer {
  const header = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(header);
  header.writeUInt16LE(3, 16); // ET_DYN
  header.writeUInt16LE(machine, 18);
  return Buffer.concat([
    header,
    Buffer.from(abi === undefined ? 'napi_register_module_v1\0' : `node_register_module_v${abi}\0`),
  ]);
}

describe('release build: what the release runs on', () => {
  const AARCH64 = 0xb7;
  const X86_64 = 0x3e;
  /** A deploy directory with node-gyp outputs (build/Release) and aws-crt's binaries for every platform. */
  function withModules(name: string, modules: Record<string, Buffer>): string {
    const dir = agentDir(path.join(root, name));
    for (const [rel, bytes] of Object.entries({
      // Chosen at run time by aws-crt: says nothing about this build.
      'node_modules/.pnpm/aws-crt@1.0.0/node_modules/aws-crt/dist/bin/linux-x64-glibc/aws-crt-nodejs.node': elf(X86_64),
      'node_modules/.pnpm/aws-crt@1.0.0/node_modules/aws-crt/dist/bin/darwin-x64-cruntime/aws-crt-nodejs.node':
        Buffer.from([0xcf, 0xfa, 0xed, 0xfe]),
      ...modules,
    })) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), bytes);
    }
    return dir;
  }
  const sqlite =
    'node_modules/.pnpm/better-sqlite3@12.0.0/node_modules/better-sqlite3/build/Release/better_sqlite3.node';
  const i2c = 'node_modules/.pnpm/i2c-bus@5.2.3/node_modules/i2c-bus/build/Release/i2c.node';
  let piDeploy: string;
  beforeAll(() => {
    // Built on (or for) a Pi with Node 24: arm64 modules, one registered with NODE_MODULE_INIT (its ABI symbol: 137).
    piDeploy = withModules('agent-pi', { [sqlite]: elf(AARCH64, 137), [i2c]: elf(AARCH64) });
  });
  const buildFrom = (from: string, cwd: string, ...args: string[]) =>
    cli(['release', 'build', '--from', from, '--key', keyFile(), '--json', ...args], { cwd });
  const manifestOf = (r: { stdout: string }) =>
    JSON.parse(fs.readFileSync((JSON.parse(r.stdout) as Built).manifest, 'utf8')) as {
      format: number;
      target: unknown;
    };

  it('detected from the native modules built for the deploy directory, signed into the manifest', async () => {
    const r = await buildFrom(piDeploy, fresh(), '--version', '1.0.0');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    const target = { platform: 'linux', arch: 'arm64', nodeAbi: 137 };
    expect(JSON.parse(r.stdout)).toMatchObject({ target });
    expect(manifestOf(r)).toMatchObject({ format: 2, target });
  });

  it('links are not followed: a link back to the directory is walked once, its modules counted once', async () => {
    const dir = withModules('agent-loop', { [i2c]: elf(AARCH64) });
    fs.symlinkSync('..', path.join(dir, 'dist/again'));
    const r = await buildFrom(dir, fresh(), '--version', '1.0.0', '--verbose');
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(JSON.parse(r.stdout)).toMatchObject({ target: { platform: 'linux', arch: 'arm64' } });
    expect(r.stderr).toMatch(/"source":"from 1 native module, Node ABI of this machine"/);
  });

  it('without native modules: this machine; --target and --node-abi override', async () => {
    const here = await buildFrom(agent, fresh(), '--version', '1.0.0');
    expect(manifestOf(here).target).toEqual({
      platform: process.platform,
      arch: process.arch,
      nodeAbi: Number(process.versions.modules),
    });
    const given = await buildFrom(agent, fresh(), '--version', '1.0.0', '--target', 'linux-arm64', '--node-abi', '127');
    expect(given.code).toBe(EXIT.ok);
    expect(manifestOf(given).target).toEqual({ platform: 'linux', arch: 'arm64', nodeAbi: 127 });
  });

  it('the flags that agree with the modules are accepted', async () => {
    const r = await buildFrom(piDeploy, fresh(), '--version', '1.0.0', '--target', 'linux-arm64', '--node-abi', '137');
    expect(r.code).toBe(EXIT.ok);
  });

  it.each<[string, () => string, string[], number, RegExp]>([
    [
      'a target without an arch',
      () => agent,
      ['--target', 'linux'],
      EXIT.usage,
      /<platform>-<arch> such as linux-arm64/,
    ],
    [
      'an arch Node does not spell so',
      () => agent,
      ['--target', 'linux-aarch64'],
      EXIT.usage,
      /target\.arch must be one of/,
    ],
    [
      'a platform Node does not know',
      () => agent,
      ['--target', 'raspbian-arm64'],
      EXIT.usage,
      /target\.platform must be one of/,
    ],
    ['an ABI that is not a number', () => agent, ['--node-abi', 'v137'], EXIT.usage, /--node-abi must be a number/],
    ['ABI 0', () => agent, ['--node-abi', '0'], EXIT.usage, /nodeAbi must be at least 1/],
    [
      'a target the modules contradict',
      () => piDeploy,
      ['--target', 'linux-x64'],
      EXIT.dataError,
      /--target linux-x64 contradicts the native modules, built for linux-arm64 \(.*better_sqlite3\.node\)/,
    ],
    [
      'an ABI the modules contradict',
      () => piDeploy,
      ['--node-abi', '115'],
      EXIT.dataError,
      /--node-abi 115 contradicts the native modules, built for Node ABI 137/,
    ],
    [
      'modules of two architectures',
      () => withModules('agent-mixed', { [sqlite]: elf(AARCH64, 137), [i2c]: elf(X86_64) }),
      [],
      EXIT.dataError,
      /built for several architectures \(arm64, x64\)/,
    ],
    [
      'a module of a machine we cannot name',
      () => withModules('agent-odd', { [i2c]: elf(0x5a) }),
      [],
      EXIT.dataError,
      /cannot tell what .*i2c\.node was built for \(ELF machine 0x5a\).*--target linux-arm64/,
    ],
  ])('%s: refused, nothing written', async (_, from, args, code, message) => {
    const cwd = fresh();
    const r = await buildFrom(from(), cwd, '--version', '1.0.0', ...args);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(fs.readdirSync(cwd)).toEqual([]);
  });
});
