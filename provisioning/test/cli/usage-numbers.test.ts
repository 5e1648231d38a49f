import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers.js';

/** Numeric global options are checked where they are parsed: a usage error, not a crash further on. */
describe('numeric options', () => {
  it.each([
    ['x', 'before the command'],
    ['0', 'before the command'],
    ['-1', 'before the command'],
    ['', 'before the command'],
    ['x', 'after the command'],
    ['0', 'after the command'],
  ])('--rate %j %s is a usage error (64) naming the option', async (value, where) => {
    const argv =
      where === 'before the command' ? ['--rate', value, 'things', 'list'] : ['things', 'list', '--rate', value];
    const r = await cli(argv, { cwd: os.tmpdir() });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(
      /^pifleet: option '--rate <factor>' argument '.*' is invalid\. --rate must be a positive number/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/RangeError|at /);
  });
});
