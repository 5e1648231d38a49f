import { describe, expect, it } from 'vitest';
import { hintCommands, INSTALLED_INVOCATION, invocationOf, shellWord, splitLocalOption } from '../../src/core/hints.js';

describe('invocationOf', () => {
  const checkout = (file: string) => file === '/src/pifleet/cloud/bin/pifleet-local-core.js';

  it.each([
    // A checkout, run from its root and from below it.
    [
      '/src/pifleet/provisioning/bin/pifleet.js',
      '/src/pifleet',
      { pifleet: 'node provisioning/bin/pifleet.js', localCore: 'node cloud/bin/pifleet-local-core.js' },
    ],
    [
      'provisioning/bin/pifleet.js',
      '/src/pifleet',
      { pifleet: 'node provisioning/bin/pifleet.js', localCore: 'node cloud/bin/pifleet-local-core.js' },
    ],
    // Outside the checkout the path is absolute (a `../..` path is hard to read).
    [
      '/src/pifleet/provisioning/bin/pifleet.js',
      '/home/op',
      {
        pifleet: 'node /src/pifleet/provisioning/bin/pifleet.js',
        localCore: 'node /src/pifleet/cloud/bin/pifleet-local-core.js',
      },
    ],
    // Installed by npm: a symlink named pifleet on PATH, or in a project's node_modules/.bin.
    ['/usr/local/bin/pifleet', '/home/op', INSTALLED_INVOCATION],
    [
      '/home/op/proj/node_modules/.bin/pifleet',
      '/home/op/proj',
      { pifleet: 'npx pifleet', localCore: 'npx pifleet-local-core' },
    ],
    [undefined, '/home/op', INSTALLED_INVOCATION],
  ])('%s from %s', (script, cwd, expected) => {
    expect(invocationOf(script, cwd, checkout)).toEqual(expected);
  });

  it('a pifleet.js without the cloud package beside it names the installed local core', () => {
    expect(invocationOf('/opt/x/provisioning/bin/pifleet.js', '/opt/x', () => false)).toEqual({
      pifleet: 'node provisioning/bin/pifleet.js',
      localCore: 'pifleet-local-core',
    });
  });

  it('quotes paths a shell would split', () => {
    expect(invocationOf('/my dir/provisioning/bin/pifleet.js', '/tmp', () => false).pifleet).toBe(
      "node '/my dir/provisioning/bin/pifleet.js'",
    );
    expect(shellWord("it's")).toBe("'it'\\''s'");
    expect(shellWord('.pifleet/demo')).toBe('.pifleet/demo');
  });
});

describe('hintCommands', () => {
  it.each([
    [{}, 'pifleet things list'],
    [{ local: true }, 'pifleet --local things list'],
    [{ local: '.pifleet/demo' }, 'pifleet --local .pifleet/demo things list'],
    // A directory that does not look like a path is repeated in the form that always names one.
    [{ local: 'mycore' }, 'pifleet --local=mycore things list'],
    [{ region: 'eu-west-1', profile: 'ops' }, 'pifleet --region eu-west-1 --profile ops things list'],
  ])('%j', (target, expected) => {
    expect(hintCommands(INSTALLED_INVOCATION, target).pifleet('things list')).toBe(expected);
  });
});

describe('splitLocalOption', () => {
  const dataDirs = new Set(['core']);
  const split = (argv: string[]) => splitLocalOption(argv, (w) => dataDirs.has(w));

  it.each([
    // The bug: `things` was read as the directory.
    [['--local', 'things', 'list'], ['--local=', 'things', 'list'], ['things']],
    [['--local'], ['--local='], []],
    [['--local', '--json', 'things', 'list'], ['--local=', '--json', 'things', 'list'], []],
    [['--local', '.pifleet/demo', 'things', 'list'], ['--local=.pifleet/demo', 'things', 'list'], []],
    [['--local', '/var/core', 'things', 'list'], ['--local=/var/core', 'things', 'list'], []],
    [['--local', 'core', 'things', 'list'], ['--local=core', 'things', 'list'], []],
    [['--local=things', 'things', 'list'], ['--local=things', 'things', 'list'], []],
    [['shadow', 'desire', 'x', '--local', 'a.b=c/d'], ['shadow', 'desire', 'x', '--local=', 'a.b=c/d'], ['a.b=c/d']],
    // After `--`, words are arguments.
    [['things', '--', '--local', 'x'], ['things', '--', '--local', 'x'], []],
  ])('%j', (argv, expected, notTaken) => {
    expect(split(argv)).toEqual({ argv: expected, notTaken });
  });
});
