import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkReleaseTarball, ReleaseTarballError, unpackReleaseTarball } from '../../src/update/unpack.js';
import { buildTarball } from './device.js';
import { AGENT_ENTRIES, type RawEntry, rawTar } from './tar-entries.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pifleet-unpack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function tarFile(bytes: Buffer): string {
  const file = path.join(dir, `t${++n}.tar.gz`);
  writeFileSync(file, bytes);
  return file;
}

async function refusal(file: string, limits?: { maxBytes: number; maxEntries: number }): Promise<ReleaseTarballError> {
  const err = await checkReleaseTarball(file, limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ReleaseTarballError);
  return err as ReleaseTarballError;
}

describe('release tarballs', () => {
  it('a release as `tar -C dir .` writes it (with pnpm’s relative links inside) unpacks whole', async () => {
    const file = tarFile(await buildTarball(dir, '2.0.0', 'healthy'));
    await checkReleaseTarball(file);
    const out = path.join(dir, 'unpacked');
    mkdirSync(out);
    await unpackReleaseTarball(file, out);
    expect(readFileSync(path.join(out, 'bin/pifleet-agent.js'), 'utf8')).toMatch(/test agent 2\.0\.0/);
    expect(readlinkSync(path.join(out, 'node_modules/dep'))).toBe('.pnpm/dep@1.0.0');
    expect(readFileSync(path.join(out, 'node_modules/dep/index.js'), 'utf8')).toBe('export default 1;\n');
  });

  it.each<[string, RawEntry, RegExp]>([
    ['an absolute path', { path: '/etc/cron.d/evil', body: 'x' }, /an absolute path/],
    ['a `..` path', { path: '../../evil.js', body: 'x' }, /a `\.\.` in its path/],
    ['a `..` inside a path', { path: 'bin/../../evil.js', body: 'x' }, /a `\.\.` in its path/],
    ['a symbolic link out of the release', { path: 'etc', type: '2', linkpath: '../../../etc' }, /outside the release/],
    ['an absolute symbolic link', { path: 'passwd', type: '2', linkpath: '/etc/passwd' }, /a link to "\/etc\/passwd"/],
    ['a hard link out of the release', { path: 'shadow', type: '1', linkpath: '../shadow' }, /outside the release/],
    ['a character device', { path: 'null', type: '3' }, /a CharacterDevice entry/],
    ['a block device', { path: 'sda', type: '4' }, /a BlockDevice entry/],
    ['a FIFO', { path: 'pipe', type: '6' }, /a FIFO entry/],
  ])('refuses %s, naming the entry, and nothing is unpacked', async (_name, entry, message) => {
    const file = tarFile(rawTar([...AGENT_ENTRIES, entry]));
    const err = await refusal(file);
    expect(err.code).toBe('TAR_UNSAFE');
    expect(err.message).toMatch(message);
    expect(err.message).toContain(JSON.stringify(entry.path));
  });

  it('refuses a path through a symbolic link of the same archive (a link to `.` then `../`)', async () => {
    const file = tarFile(
      rawTar([
        ...AGENT_ENTRIES,
        { path: 'here', type: '2', linkpath: '.' },
        { path: 'here/x', type: '2', linkpath: '../escape' },
      ]),
    );
    expect((await refusal(file)).message).toMatch(/a path through a symbolic link/);
  });

  it('refuses a link that leaves the release through another link (`s -> .`, `x -> s/..`)', async () => {
    const file = tarFile(
      rawTar([...AGENT_ENTRIES, { path: 's', type: '2', linkpath: '.' }, { path: 'x', type: '2', linkpath: 's/..' }]),
    );
    expect((await refusal(file)).message).toMatch(
      /entry "x": a link to "s\/\.\." that leaves the release through other links/,
    );
    const loop = tarFile(
      rawTar([...AGENT_ENTRIES, { path: 'a', type: '2', linkpath: 'b' }, { path: 'b', type: '2', linkpath: 'a' }]),
    );
    expect((await refusal(loop)).message).toMatch(/through other links/);
  });

  it('accepts links resolved through other links that stay inside (pnpm’s .bin through a package link)', async () => {
    const file = tarFile(
      rawTar([
        ...AGENT_ENTRIES,
        { path: 'node_modules/', type: '5' },
        { path: 'node_modules/.pnpm/', type: '5' },
        { path: 'node_modules/.pnpm/pino@9/', type: '5' },
        { path: 'node_modules/.pnpm/pino@9/bin.js', body: 'x' },
        { path: 'node_modules/pino', type: '2', linkpath: '.pnpm/pino@9' },
        { path: 'node_modules/.bin/', type: '5' },
        { path: 'node_modules/.bin/pino', type: '2', linkpath: '../pino/bin.js' },
      ]),
    );
    await checkReleaseTarball(file);
  });

  it('caps the unpacked size and the number of entries', async () => {
    const big = tarFile(rawTar([...AGENT_ENTRIES, { path: 'blob', body: 'x'.repeat(4096) }]));
    expect((await refusal(big, { maxBytes: 1024, maxEntries: 100 })).message).toMatch(
      /unpacks to more than 1024 bytes/,
    );
    const many = tarFile(
      rawTar([...AGENT_ENTRIES, ...Array.from({ length: 10 }, (_, i) => ({ path: `f${i}`, body: '' }))]),
    );
    expect((await refusal(many, { maxBytes: 1e9, maxEntries: 5 })).message).toMatch(/more than 5 entries/);
  });

  it.each([
    ['not gzip', Buffer.from('this is not a tarball')],
    ['truncated gzip', rawTar(AGENT_ENTRIES).subarray(0, 40)],
    ['empty', rawTar([])],
  ])('%s is TAR_INVALID', async (_name, bytes) => {
    expect((await refusal(tarFile(bytes))).code).toBe('TAR_INVALID');
  });

  it('node-tar itself refuses what the check would let through when called on a bad archive (defence in depth)', async () => {
    const out = path.join(dir, 'direct');
    mkdirSync(out);
    const file = tarFile(rawTar([...AGENT_ENTRIES, { path: '../outside.txt', body: 'x' }]));
    await expect(unpackReleaseTarball(file, out)).rejects.toBeInstanceOf(ReleaseTarballError);
    expect(existsSync(path.join(dir, 'outside.txt'))).toBe(false);
  });
});
