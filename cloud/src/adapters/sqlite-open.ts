import Database from 'better-sqlite3';
import { CloudError } from '../errors.js';

/**
 * Opening the SQLite files of the local IoT Core's data directory so that a file that cannot be
 * used fails with its path and what to do about it, instead of a bare `file is not a database`.
 */

/**
 * A data file that cannot be used: not a SQLite database or damaged (`data-file.corrupt`), not
 * openable (`data-file.cannot-open`), or not writable (`data-file.permission`).
 */
export class DataFileError extends CloudError {
  override name = 'DataFileError';
}

/** What a data file holds, for the message that tells the operator what to do with a broken one. */
export interface DataFileRole {
  /** e.g. 'registry' */
  readonly holds: string;
  /** What is lost when the file is replaced by an empty one, e.g. 'things, certificates and policies'. */
  readonly lost: string;
}

/** better-sqlite3's SqliteError carries SQLite's extended result code name, e.g. SQLITE_NOTADB. */
function sqliteCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * Turns an error SQLite raised while opening `file` into a {@link DataFileError} naming the file
 * and a fix; any other error comes back unchanged.
 */
export function dataFileError(err: unknown, file: string, role: DataFileRole): unknown {
  const code = sqliteCode(err);
  const reason = err instanceof Error ? err.message : String(err);
  const data = { file, sqliteCode: code };
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new DataFileError(
      'DATA_FILE_CORRUPT',
      `${file} is not a usable SQLite database (${reason}): move it (with any -wal and -shm file beside it) ` +
        `aside and start again with an empty ${role.holds} (${role.lost} are lost), or restore it from a backup`,
      { cause: err, data },
    );
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new DataFileError(
      'DATA_FILE_CANNOT_OPEN',
      `cannot open ${file} (${reason}): it must be a regular file (or absent) in a directory the core can write`,
      { cause: err, data },
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') {
    return new DataFileError(
      'DATA_FILE_PERMISSION',
      `cannot write ${file} (${reason}): give the user running the core write access to it and its directory`,
      { cause: err, data },
    );
  }
  return err;
}

/**
 * Opens (creating if needed) the SQLite database `file` and reads its header and schema, so a file
 * that is not a database, or whose schema is damaged, fails here with a {@link DataFileError}
 * rather than at the first query. (SQLite reads nothing until the first statement; the schema read
 * costs one page or a few, whatever the size of the file. Damage deeper in the data still shows
 * only when it is read.)
 */
export function openSqliteFile(file: string, role: DataFileRole, options: Database.Options = {}): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, options);
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    return db;
  } catch (err) {
    try {
      db?.close();
    } catch {
      // the open failed; nothing more to release
    }
    throw dataFileError(err, file, role);
  }
}

/** The roles of the core's data files, by file. */
export const DATA_FILE_ROLES = {
  registry: { holds: 'registry', lost: 'things, certificates and policies' },
  shadows: { holds: 'shadow store', lost: 'shadow documents' },
  telemetry: { holds: 'telemetry store', lost: 'stored readings and connectivity records' },
} as const satisfies Record<string, DataFileRole>;
