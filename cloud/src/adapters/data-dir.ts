import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoOf, makeDirectorySync } from '@pifleet/protocol';
import Database from 'better-sqlite3';
import { CloudError } from '../errors.js';
import { DataFileError, dataFileError } from './sqlite-open.js';

/**
 * The local IoT Core's data directory: created if absent, refused with the path and a fix when it
 * is not a directory, and locked so that one core at a time runs on it.
 */

/**
 * A data directory the core cannot use: not a directory (`DATA_DIR_NOT_A_DIRECTORY`), one the file
 * system will not make (`DATA_DIR_CANNOT_CREATE`, e.g. under /proc), or locked by another running
 * core (`DATA_DIR_LOCKED`, with the other core's `pid` when known).
 */
export class DataDirError extends CloudError {
  override name = 'DataDirError';
}

/** The lock file (an empty SQLite database) and the file naming the process that holds it. */
export function dataDirLockPaths(dataDir: string) {
  return { lockFile: join(dataDir, 'core.lock'), pidFile: join(dataDir, 'core.pid') };
}

/** The nearest existing path at or above `path` (undefined if none can be stat'ed). */
function nearestExisting(path: string): { path: string; isDirectory: boolean } | undefined {
  for (let p = path; ; p = dirname(p)) {
    try {
      return { path: p, isDirectory: statSync(p).isDirectory() };
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

/**
 * Creates `dataDir` (mode 0700, parents included) unless it exists. A file where the directory or
 * one of its parents should be gives a {@link DataDirError} naming that file, and so does a level
 * the file system will not make (ENOENT below an existing /proc, EROFS); permission errors (EACCES,
 * EPERM) come back unchanged, as the permission exit code says what to fix.
 *
 * Made level by level (makeDirectorySync): `mkdirSync(dir, { recursive: true })` never returned
 * for `--data-dir /proc/x`, at full CPU and deaf to SIGTERM, as its loop never yields to the
 * signal handler.
 */
export function prepareDataDir(dataDir: string): void {
  const existing = nearestExisting(dataDir);
  if (existing && !existing.isDirectory) {
    const what = existing.path === dataDir ? 'is a file' : `is inside ${existing.path}, which is a file`;
    throw new DataDirError(
      'DATA_DIR_NOT_A_DIRECTORY',
      `data directory ${dataDir} ${what}, not a directory: pass --data-dir a directory (it is created if absent), ` +
        `or move ${existing.path} away`,
      { data: { dataDir, file: existing.path } },
    );
  }
  try {
    makeDirectorySync(dataDir, 0o700);
  } catch (err) {
    const code = errnoOf(err);
    if (code === undefined || code === 'EACCES' || code === 'EPERM') throw err;
    throw new DataDirError(
      'DATA_DIR_CANNOT_CREATE',
      `data directory ${dataDir} cannot be created (${code}): pass --data-dir a directory on a writable ` +
        'file system (it is created if absent)',
      { data: { dataDir, errno: code }, cause: err },
    );
  }
}

const LOCK_ROLE = { holds: 'lock file', lost: 'no data' };

export interface DataDirLock {
  /** Gives the directory up: removes the pid file and releases the lock. Idempotent. */
  release(): void;
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the data directory for this process, or throws a {@link DataDirError} `data-dir.locked`
 * naming the process that has it.
 *
 * The lock is SQLite's own exclusive lock on `core.lock`, held by an open transaction for as long
 * as the core runs. It is a POSIX record lock, which the kernel releases when the process ends in
 * any way, `kill -9` and power loss included: a stale lock cannot exist, so there is no PID
 * liveness check to get wrong (a recycled PID, a core on another host sharing the directory) and
 * no lock file to delete by hand. SQLite also tracks its locks per file inside one process, so a
 * second core started in the same process (tests, the fleet runner) is refused as well; a bare
 * `fs` open and close of `core.lock` in this process would drop the lock, which is why nothing but
 * this module touches it. `core.pid` only tells the refused process whom to ask; it is written once
 * the lock is held and is never trusted for the decision.
 */
export function lockDataDir(dataDir: string, pid: number = process.pid): DataDirLock {
  const { lockFile, pidFile } = dataDirLockPaths(dataDir);
  let db: Database.Database | undefined;
  try {
    // No waiting (better-sqlite3 waits 5 s by default): a core keeps the directory until it stops.
    db = new Database(lockFile, { timeout: 0 });
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db?.close();
    const code = (err as { code?: unknown }).code;
    if (code === 'SQLITE_NOTADB' || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'))) {
      throw new DataFileError(
        'DATA_FILE_CORRUPT',
        `${lockFile} is not the lock file the core makes (${(err as Error).message}): remove it (it holds no data) and start again`,
        { cause: err, data: { file: lockFile } },
      );
    }
    if (code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') throw dataFileError(err, lockFile, LOCK_ROLE);
    const owner = readPid(pidFile);
    const who = owner === undefined ? 'another local IoT Core' : `another local IoT Core (pid ${owner})`;
    throw new DataDirError(
      'DATA_DIR_LOCKED',
      `${who} is already running on ${dataDir}: use that one, stop it first` +
        `${owner === undefined ? '' : ` (kill ${owner})`}, or pass another --data-dir`,
      { cause: err, data: { dataDir, ...(owner === undefined ? {} : { pid: owner }) } },
    );
  }
  const held = db;
  try {
    writeFileSync(pidFile, `${pid}\n`, { mode: 0o600 });
  } catch (err) {
    held.close();
    throw err;
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        rmSync(pidFile, { force: true });
      } finally {
        held.close();
      }
    },
  };
}
