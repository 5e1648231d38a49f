import fs from 'node:fs';
import path from 'node:path';
import { removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { errnoOf, makeDirectory } from '../../src/adapters/make-directory.js';

/** `mkdir -p` that always settles: the directories CLI output goes into (keys, releases, bundles). */

const root = tempDir('make-directory');
afterAll(() => removeDir(root));
const mode = (dir: string) => fs.statSync(dir).mode & 0o777;
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => 'made',
    (err: unknown) => errnoOf(err),
  );

describe('makeDirectory', () => {
  it('makes every missing level with the mode, and takes an existing directory', async () => {
    const old = process.umask(0o022);
    try {
      const dir = path.join(root, 'a', 'b', 'c');
      await makeDirectory(dir, 0o700);
      for (const d of [path.join(root, 'a'), path.join(root, 'a', 'b'), dir]) expect(mode(d)).toBe(0o700);
      await makeDirectory(dir, 0o755);
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
    expect(await refusal(makeDirectory(target(base), 0o700))).toBe(code);
    expect(fs.readdirSync(base)).toEqual(['file']);
  });
});
