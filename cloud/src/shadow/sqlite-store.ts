import { DATA_FILE_ROLES, openSqliteFile } from '../adapters/sqlite-open.js';
import type { ShadowMetadataSections, ShadowSections, StoredShadow } from '../core/shadow/document.js';
import { CloudError } from '../errors.js';
import type { ShadowStore } from './store.js';

export class ShadowStoreError extends CloudError {
  override name = 'ShadowStoreError';
}

export interface SqliteShadowStoreOptions {
  /** Database file; `:memory:` for a throwaway store. */
  readonly path: string;
  /**
   * SQLite `synchronous` setting. `FULL` (default) makes every accepted update survive power
   * loss; `NORMAL` (WAL) still survives a crash or `kill -9` of the process, and is faster.
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
}

interface Row {
  thing_name: string;
  shadow_name: string;
  version: number;
  deleted: number;
  document: string;
}

/**
 * Opens (creating if needed) the SQLite shadow store. One row per (thing, shadow name); the
 * classic shadow is stored under the empty name (named shadows are never empty). The document
 * column holds `{state, metadata}` as JSON.
 */
export function openSqliteShadowStore(options: SqliteShadowStoreOptions): ShadowStore {
  // A file that is not a usable database fails here, named, with what to do (not at the first query).
  const db = openSqliteFile(options.path, DATA_FILE_ROLES.shadows);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  db.exec(`CREATE TABLE IF NOT EXISTS shadows (
    thing_name TEXT NOT NULL,
    shadow_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (thing_name, shadow_name)
  ) WITHOUT ROWID`);
  const selectOne = db.prepare<[string, string], Row>(
    'SELECT thing_name, shadow_name, version, deleted, document FROM shadows WHERE thing_name = ? AND shadow_name = ?',
  );
  const upsert = db.prepare<[string, string, number, number, string]>(
    `INSERT INTO shadows (thing_name, shadow_name, version, deleted, document) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (thing_name, shadow_name) DO UPDATE SET version = excluded.version, deleted = excluded.deleted,
     document = excluded.document`,
  );
  const selectNamed = db.prepare<[string, string, number], { shadow_name: string }>(
    `SELECT shadow_name FROM shadows WHERE thing_name = ? AND shadow_name > ? AND deleted = 0
     ORDER BY shadow_name LIMIT ?`,
  );
  let closed = false;

  function fromRow(row: Row): StoredShadow {
    let doc: { state?: ShadowSections; metadata?: ShadowMetadataSections };
    try {
      // Our own write: only this store fills the column, with the state and metadata of a shadow
      // document the shadow service built from a parsed, checked update. A file that is not JSON
      // is reported as corrupt below; a schema pass on every read would check our own output.
      doc = JSON.parse(row.document) as typeof doc;
    } catch (cause) {
      throw new ShadowStoreError('SHADOW_STORE_CORRUPT', 'stored shadow document is not valid JSON', {
        cause,
        data: { thingName: row.thing_name, shadowName: row.shadow_name },
      });
    }
    return {
      thingName: row.thing_name,
      shadowName: row.shadow_name === '' ? undefined : row.shadow_name,
      version: row.version,
      exists: row.deleted === 0,
      state: doc.state ?? {},
      metadata: doc.metadata ?? {},
    };
  }

  return {
    load: async (thing, shadow) => {
      const row = selectOne.get(thing, shadow ?? '');
      return row === undefined ? undefined : fromRow(row);
    },
    save: async (s) => {
      upsert.run(
        s.thingName,
        s.shadowName ?? '',
        s.version,
        s.exists ? 0 : 1,
        JSON.stringify({ state: s.state, metadata: s.metadata }),
      );
    },
    listNamed: async (thing, { after, limit }) =>
      // '' is the classic shadow, so "> ''" skips it when no `after` is given.
      selectNamed.all(thing, after ?? '', limit).map((r) => r.shadow_name),
    close: async () => {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
