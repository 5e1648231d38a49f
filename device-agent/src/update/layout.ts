import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * Where an updated device keeps its releases, and the few file operations that must survive a
 * power cut. Only `node:` modules: the boot guard, which runs from the factory install before
 * every start, imports this file and must not depend on anything an update could change.
 *
 * ```
 * <stateDir>/releases/<version>/     unpacked releases, side by side
 * <stateDir>/releases/.incoming/     downloads and unpacks in progress
 * <stateDir>/current -> <a release>  the running agent (the factory install at first)
 * <stateDir>/update.json             the persisted update state
 * ```
 */
export interface UpdateLayout {
  readonly stateDir: string;
  readonly factoryDir: string;
  readonly releasesDir: string;
  readonly incomingDir: string;
  readonly currentLink: string;
  readonly stateFile: string;
}

export function updateLayout(stateDir: string, factoryDir: string): UpdateLayout {
  const releasesDir = path.join(stateDir, 'releases');
  return {
    stateDir,
    factoryDir,
    releasesDir,
    incomingDir: path.join(releasesDir, '.incoming'),
    currentLink: path.join(stateDir, 'current'),
    stateFile: path.join(stateDir, 'update.json'),
  };
}

/** The agent's launcher inside a release (and inside the factory install). */
export const AGENT_LAUNCHER = path.join('bin', 'pifleet-agent.js');

/**
 * The file operations the updater uses, so a test can make one fail as a full disk does (ENOSPC
 * from a write) without a small filesystem to fill. Production passes `node:fs/promises`.
 */
export type UpdateFs = Pick<
  typeof fsp,
  'open' | 'rename' | 'mkdir' | 'rm' | 'symlink' | 'readlink' | 'realpath' | 'readFile' | 'readdir' | 'stat'
>;

export const nodeFs: UpdateFs = fsp;

/** fsync a directory, so a rename or a new link in it is on disk before the next step relies on it. */
export async function syncDir(fs: UpdateFs, dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `text` so that after a power cut it holds either the old or the new text,
 * never a mix or nothing: a temp file written and fsynced, renamed over the file, and the directory
 * fsynced (the rename itself is only durable once its directory is).
 */
export async function writeFileAtomic(fs: UpdateFs, file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await fs.open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
  await syncDir(fs, path.dirname(file));
}

/**
 * Points `link` at `target` atomically: a new link beside it renamed over it (rename(2) replaces a
 * symlink in one step, so a reader sees the old target or the new one, never no link), then the
 * directory fsynced.
 */
export async function switchLink(fs: UpdateFs, link: string, target: string): Promise<void> {
  const next = `${link}.new`;
  await fs.rm(next, { force: true });
  await fs.symlink(target, next);
  await fs.rename(next, link);
  await syncDir(fs, path.dirname(link));
}

/** The link's target, or undefined when there is no link (or something else is there). */
export async function readLinkTarget(fs: UpdateFs, link: string): Promise<string | undefined> {
  try {
    return await fs.readlink(link);
  } catch {
    return undefined;
  }
}

/** A directory an agent can be started from: it has the launcher as a regular file. */
export async function isRunnable(fs: UpdateFs, dir: string | undefined): Promise<boolean> {
  if (dir === undefined) return false;
  try {
    return (await fs.stat(path.join(dir, AGENT_LAUNCHER))).isFile();
  } catch {
    return false;
  }
}

/**
 * Flushes a freshly unpacked tree to disk before it is renamed into place and switched to: after a
 * power cut, files written moments before can come back empty (ext4 allocates their blocks
 * lazily), and an agent with empty modules crashes at start. `sync --file-system` (coreutils:
 * syncfs(2)) flushes the whole file system in one call, which on an SD card costs far less than
 * one fsync per file of a ~4,500-file release; without it, each file and directory is fsynced.
 */
export async function syncTree(fs: UpdateFs, dir: string): Promise<void> {
  const viaSyncfs = await new Promise<boolean>((resolve) => {
    execFile('sync', ['--file-system', dir], { timeout: 120_000 }, (err) => resolve(err === null));
  });
  if (viaSyncfs) return;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        const handle = await fs.open(full, constants.O_RDONLY);
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
    }
    await syncDir(fs, d);
  };
  await walk(dir);
}
