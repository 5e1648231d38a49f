import path from 'node:path';
import { extract, list, type ReadEntry } from 'tar';
import { AgentError } from '../errors.js';

/** A tarball that is not a release the device may unpack; `code` `TAR_*`, the message names the entry. */
export class ReleaseTarballError extends AgentError {
  override name = 'ReleaseTarballError';
}

export interface UnpackLimits {
  /** Sum of the entries' sizes. */
  readonly maxBytes: number;
  readonly maxEntries: number;
}

/** An agent deploy is ~30,000 files and ~150 MB (most of it the device SDK's native binaries). */
export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxBytes: 1024 * 1024 * 1024, maxEntries: 200_000 };

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/** An entry's path relative to the release root, or a reason to refuse it. */
function relativeEntryPath(raw: string): string | { problem: string } {
  if (raw.includes('\0')) return { problem: 'a NUL in its path' };
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) return { problem: 'an absolute path' };
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { problem: 'a `..` in its path' };
  return parts.join('/');
}

/** True when `p` (normalised, relative) stays inside the root. */
function inside(p: string): boolean {
  return p !== '..' && !p.startsWith('../') && !path.posix.isAbsolute(p);
}

/**
 * Follows the link at `rel` (target `target`) through the archive's other symbolic links, as the
 * kernel would once unpacked; false when a step leaves the root (or links loop, as ELOOP would).
 */
function resolvesInside(links: ReadonlyMap<string, string>, rel: string, target: string): boolean {
  const dir = rel.split('/').slice(0, -1);
  const todo = [...target.split('/')].reverse();
  const at: string[] = [...dir];
  let hops = 0;
  for (let seg = todo.pop(); seg !== undefined; seg = todo.pop()) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (at.length === 0) return false;
      at.pop();
      continue;
    }
    at.push(seg);
    const link = links.get(at.join('/'));
    if (link !== undefined) {
      if (++hops > 40) return false;
      at.pop();
      todo.push(...link.split('/').reverse());
    }
  }
  return true;
}

/**
 * Reads every entry header of the tarball before anything is written, and refuses the whole
 * release on the first entry that could write outside the release directory or is not plain
 * content: an absolute path, a `..`, a path through a symbolic link of the same tarball, a link
 * whose target leaves the directory, a device, FIFO or other special entry; or past the limits.
 * node-tar would skip some of these with a warning, but a release that carries them was not built
 * by `pifleet release build`, so none of it is installed.
 */
export async function checkReleaseTarball(file: string, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS): Promise<void> {
  let problem: string | undefined;
  let bytes = 0;
  let entries = 0;
  /** Symbolic links of the archive: path → target. */
  const links = new Map<string, string>();
  const refuse = (entry: ReadEntry, why: string) => {
    problem ??= `entry ${JSON.stringify(entry.path.slice(0, 200))}: ${why}`;
  };
  try {
    await list({
      file,
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        entry.resume();
        if (problem) return;
        entries += 1;
        bytes += entry.size ?? 0;
        if (entries > limits.maxEntries) return refuse(entry, `more than ${limits.maxEntries} entries`);
        if (bytes > limits.maxBytes) return refuse(entry, `unpacks to more than ${limits.maxBytes} bytes`);
        if (!ALLOWED_TYPES.has(entry.type)) return refuse(entry, `a ${entry.type} entry`);
        const rel = relativeEntryPath(entry.path);
        if (typeof rel !== 'string') return refuse(entry, rel.problem);
        const segments = rel.split('/');
        for (let i = 1; i < segments.length; i++) {
          if (links.has(segments.slice(0, i).join('/'))) return refuse(entry, 'a path through a symbolic link');
        }
        if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
          const target = entry.linkpath ?? '';
          if (target === '' || target.startsWith('/')) return refuse(entry, `a link to ${JSON.stringify(target)}`);
          // A symbolic link resolves from its own directory, a hard link from the archive's root.
          const resolved = path.posix.normalize(
            entry.type === 'SymbolicLink' ? path.posix.join(path.posix.dirname(rel), target) : target,
          );
          if (!inside(resolved)) return refuse(entry, `a link to ${JSON.stringify(target)} outside the release`);
          if (entry.type === 'SymbolicLink') links.set(rel, target);
        }
      },
    });
  } catch (err) {
    throw new ReleaseTarballError('TAR_INVALID', `release is not a readable tar.gz: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // Each link checked alone stays inside, but one resolved through another may not (`s -> .` and
  // `x -> s/..`: `x` names the release's parent): every link is resolved through the others.
  if (!problem) {
    for (const [rel, target] of links) {
      if (!resolvesInside(links, rel, target)) {
        problem = `entry ${JSON.stringify(rel.slice(0, 200))}: a link to ${JSON.stringify(target)} that leaves the release through other links`;
        break;
      }
    }
  }
  if (problem) throw new ReleaseTarballError('TAR_UNSAFE', `release tarball refused: ${problem}`);
  if (entries === 0) throw new ReleaseTarballError('TAR_INVALID', 'release tarball is empty');
}

/**
 * Unpacks a checked tarball into `dir` (which must exist and be empty). node-tar's own protections
 * stay on (strict: any warning fails; no absolute paths, no `..`, nothing written through a link),
 * owners are not restored (the files belong to the service user).
 */
export async function unpackReleaseTarball(file: string, dir: string): Promise<void> {
  try {
    await extract({ file, cwd: dir, strict: true, preserveOwner: false, noMtime: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw err;
    throw new ReleaseTarballError('TAR_INVALID', `release could not be unpacked: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
