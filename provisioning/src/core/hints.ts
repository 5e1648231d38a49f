import path from 'node:path';

/**
 * Commands printed in hints must run when pasted. In a checkout `pifleet` and `pifleet-local-core`
 * are not on PATH (they run as `node provisioning/bin/pifleet.js`), and a hint for a run against
 * the local core must target that core again. Pure: the caller reads argv, cwd and the file system.
 */

/** How this `pifleet` was started, and so how to start it and the local core again. */
export interface Invocation {
  /** `pifleet`, `npx pifleet` or `node provisioning/bin/pifleet.js`. */
  readonly pifleet: string;
  /** `pifleet-local-core` or `node cloud/bin/pifleet-local-core.js`. */
  readonly localCore: string;
}

/** An installed CLI: both bins are on PATH. */
export const INSTALLED_INVOCATION: Invocation = { pifleet: 'pifleet', localCore: 'pifleet-local-core' };

const SHELL_SAFE = /^[\w@%+=:,./-]+$/;

/** Quotes a word for a POSIX shell when it needs it. */
export function shellWord(word: string): string {
  return SHELL_SAFE.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A path as the user would type it from `cwd`: relative below it, absolute elsewhere. */
function displayPath(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel === '' || rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/**
 * Works out the invocation from the script node ran (`process.argv[1]`). A script run by its path
 * (`pifleet.js`: a checkout, or a package manager's shim that runs the file) is printed as
 * `node PATH`, and the local core as the sibling package's bin when the checkout has it. A bin
 * run by its name (an npm symlink `pifleet`) is on PATH, or in `node_modules/.bin` (`npx pifleet`).
 */
export function invocationOf(script: string | undefined, cwd: string, exists: (file: string) => boolean): Invocation {
  if (!script) return INSTALLED_INVOCATION;
  const file = path.resolve(cwd, script);
  if (path.basename(file) === 'pifleet.js') {
    const core = path.resolve(path.dirname(file), '../../cloud/bin/pifleet-local-core.js');
    return {
      pifleet: `node ${shellWord(displayPath(file, cwd))}`,
      localCore: exists(core) ? `node ${shellWord(displayPath(core, cwd))}` : INSTALLED_INVOCATION.localCore,
    };
  }
  if (
    path.basename(path.dirname(file)) === '.bin' &&
    path.basename(path.dirname(path.dirname(file))) === 'node_modules'
  ) {
    return { pifleet: 'npx pifleet', localCore: 'npx pifleet-local-core' };
  }
  return INSTALLED_INVOCATION;
}

/** The target options of this run, repeated in hints so a hint talks to the same IoT Core. */
export interface TargetOptions {
  readonly local?: string | boolean;
  readonly region?: string;
  readonly profile?: string;
}

/** Builds the command lines hints print. */
export interface HintCommands {
  /** `pifleet …` as it runs here, with this run's target options: `pifleet(\`things list\`)`. */
  pifleet(rest: string): string;
  /** The local core's command, to start it. */
  readonly localCore: string;
}

/** Whether `--local DIR` (space form) reads DIR back as the directory; see {@link splitLocalOption}. */
export function looksLikePath(word: string): boolean {
  return word.includes('/') || word.includes(path.sep) || word.startsWith('.');
}

export function hintCommands(invocation: Invocation, target: TargetOptions = {}): HintCommands {
  const options: string[] = [];
  if (target.local === true || target.local === '') options.push('--local');
  else if (typeof target.local === 'string') {
    options.push(
      looksLikePath(target.local) ? `--local ${shellWord(target.local)}` : `--local=${shellWord(target.local)}`,
    );
  }
  if (target.region !== undefined) options.push(`--region ${shellWord(target.region)}`);
  if (target.profile !== undefined) options.push(`--profile ${shellWord(target.profile)}`);
  const prefix = [invocation.pifleet, ...options].join(' ');
  return { pifleet: (rest) => `${prefix} ${rest}`, localCore: invocation.localCore };
}

/** Hints for code that runs outside a command (tests, library use): the installed names, no target options. */
export const PLAIN_HINTS: HintCommands = hintCommands(INSTALLED_INVOCATION);

/** Result of {@link splitLocalOption}. */
export interface LocalOptionSplit {
  /** argv with every `--local` in the form commander reads unambiguously (`--local=DIR` or `--local=`). */
  readonly argv: string[];
  /** Words that followed a bare `--local` and were left as commands or arguments. */
  readonly notTaken: readonly string[];
}

/**
 * Commander reads `--local [dir]` greedily: `pifleet --local things list` took `things` as the
 * directory. The word after a bare `--local` is the directory only when it is one: it looks like a
 * path (has a `/` or starts with `.`) or is a local core's data directory (`isDataDir`), and is
 * not an option or an assignment. Anything else stays a command or an argument; `--local=DIR`
 * always names a directory.
 */
export function splitLocalOption(argv: readonly string[], isDataDir: (word: string) => boolean): LocalOptionSplit {
  const out: string[] = [];
  const notTaken: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (word !== '--local') {
      out.push(word);
      continue;
    }
    const next = argv[i + 1];
    // A word with `=` is a key=value assignment (`shadow desire NAME --local a.b=c/d`), never taken.
    const candidate = next !== undefined && !next.startsWith('-') && !next.includes('=');
    if (candidate && (looksLikePath(next) || isDataDir(next))) {
      out.push(`--local=${next}`);
      i++;
    } else {
      out.push('--local=');
      if (next !== undefined && !next.startsWith('-')) notTaken.push(next);
    }
  }
  return { argv: out, notTaken };
}
