import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * `mkdir -p` that always settles. The one file-system helper in this package, which otherwise
 * does no I/O: the local core (cloud), the device agent and the provisioning CLI all make
 * directories a user names (`--data-dir`, `--out`, the agent's state and outbox paths), and
 * `@pifleet/protocol` is the only package all three import.
 *
 * Node's `mkdir(dir, { recursive: true })` loops at full CPU, and never answers SIGTERM's handler,
 * when a child's mkdir answers ENOENT although its parent exists, as procfs does: `/proc/x` never
 * settled (measured on Node 24, the promise and the sync form alike). Here each level is made in
 * turn, and an ENOENT once the parent exists is the answer.
 */

/** The errno code of a file-system error (`ENOENT`, …), or undefined for anything else. */
export const errnoOf = (err: unknown): string | undefined => {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
};

/** The two calls {@link makeDirectory} makes, so a caller with an injected file system passes its own. */
export interface DirectoryFs {
  mkdir(dir: string, options: { mode: number }): Promise<unknown>;
  stat(file: string): Promise<{ isDirectory(): boolean }>;
}

const nodeDirectoryFs: DirectoryFs = { mkdir, stat };

/** Directories are made with this mode (less the umask) unless the caller says otherwise, as mkdir(1) does. */
const DEFAULT_MODE = 0o777;

/**
 * Makes `dir` and its missing parents, each with `mode` (less the umask); an existing directory is
 * taken as it is. A file where a directory goes is refused (EEXIST, ENOTDIR), and so is a level the
 * file system will not make (ENOENT under /proc, EACCES): the error is mkdir's own.
 */
export async function makeDirectory(
  dir: string,
  mode = DEFAULT_MODE,
  fs: DirectoryFs = nodeDirectoryFs,
): Promise<void> {
  // An EEXIST from mkdir is fine when what exists is a directory; a file there is the error.
  const existing = async (err: unknown) => {
    const st = await fs.stat(dir).catch(() => undefined);
    if (st?.isDirectory() !== true) throw err;
  };
  try {
    await fs.mkdir(dir, { mode });
    return;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return existing(err);
    if (errnoOf(err) !== 'ENOENT' || path.dirname(dir) === dir) throw err;
  }
  await makeDirectory(path.dirname(dir), mode, fs);
  try {
    await fs.mkdir(dir, { mode });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
    await existing(err);
  }
}

/** {@link makeDirectory} for synchronous start-up code (the local core's data directory, the agent's files). */
export function makeDirectorySync(dir: string, mode = DEFAULT_MODE): void {
  const existing = (err: unknown) => {
    let isDirectory = false;
    try {
      isDirectory = statSync(dir).isDirectory();
    } catch {
      // Gone again, or not stat-able: mkdir's own error says more than stat's.
    }
    if (!isDirectory) throw err;
  };
  try {
    mkdirSync(dir, { mode });
    return;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') {
      existing(err);
      return;
    }
    if (errnoOf(err) !== 'ENOENT' || path.dirname(dir) === dir) throw err;
  }
  makeDirectorySync(path.dirname(dir), mode);
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
    existing(err);
  }
}
