import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type DirectoryFs, errnoOf, makeDirectory, makeDirectorySync } from '../src/make-directory.js';

/**
 * `mkdir -p` that always settles: the directories the CLI writes into (keys, releases, bundles),
 * the local core's data directory and the agent's state and outbox directories.
 */

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-make-directory-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const mode = (dir: string) => fs.statSync(dir).mode & 0o777;

/** The async and the sync form, both answering the errno they refuse with ('made' when they do not). */
const forms: [string, (dir: string, mode: number) => Promise<string | undefined>][] = [
  ['makeDirectory', (dir, m) => makeDirectory(dir, m).then(() => 'made', errnoOf)],
  [
    'makeDirectorySync',
    async (dir, m) => {
      try {
        makeDirectorySync(dir, m);
        return 'made';
      } catch (err) {
        return errnoOf(err);
      }
    },
  ],
];

describe.each(forms)('%s', (_name, make) => {
  it('makes every missing level with the mode, and takes an existing directory', async () => {
    const old = process.umask(0o022);
    try {
      const base = fs.mkdtempSync(path.join(root, 'm-'));
      const dir = path.join(base, 'a', 'b', 'c');
      expect(await make(dir, 0o700)).toBe('made');
      for (const d of [path.join(base, 'a'), path.join(base, 'a', 'b'), dir]) expect(mode(d)).toBe(0o700);
      expect(await make(dir, 0o755)).toBe('made');
      expect(mode(dir)).toBe(0o700);
    } finally {
      process.umask(old);
    }
  });

  it.each<[string, (base: string) => string, string]>([
    ['a file where the directory goes', (base) => path.join(base, 'file'), 'EEXIST'],
    ['a path through a file', (base) => path.join(base, 'file', 'below'), 'ENOTDIR'],
    // Node's mkdir(…, { recursive: true }) never settles here (procfs answers ENOENT below /proc).
    ...(fs.existsSync('/proc/self')
      ? [['a path under /proc', () => `/proc/pifleet-${process.pid}/a/b`, 'ENOENT'] as [string, () => string, string]]
      : []),
  ])('refuses %s with its errno', async (_what, target, code) => {
    const base = fs.mkdtempSync(path.join(root, 'r-'));
    fs.writeFileSync(path.join(base, 'file'), 'x');
    expect(await make(target(base), 0o700)).toBe(code);
    expect(fs.readdirSync(base)).toEqual(['file']);
  });
});

describe('makeDirectory with an injected file system', () => {
  it('makes its directories through it (the agent updater passes the fs its tests fail on purpose)', async () => {
    const made: string[] = [];
    const injected: DirectoryFs = {
      mkdir: async (dir, options) => {
        made.push(dir);
        return fs.promises.mkdir(dir, options);
      },
      stat: (file) => fs.promises.stat(file),
    };
    const base = fs.mkdtempSync(path.join(root, 'i-'));
    await makeDirectory(path.join(base, 'x', 'y'), 0o700, injected);
    expect(fs.statSync(path.join(base, 'x', 'y')).isDirectory()).toBe(true);
    expect(made).toEqual([path.join(base, 'x', 'y'), path.join(base, 'x'), path.join(base, 'x', 'y')]);
  });

  it('passes its error on unchanged (a full disk stays ENOSPC)', async () => {
    const full: DirectoryFs = {
      mkdir: async () => {
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      },
      stat: (file) => fs.promises.stat(file),
    };
    await expect(makeDirectory(path.join(root, 'never'), 0o700, full)).rejects.toMatchObject({ code: 'ENOSPC' });
  });
});
