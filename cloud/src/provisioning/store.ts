import { openSqliteFile } from '../adapters/sqlite-open.js';
import { CloudError } from '../errors.js';

/**
 * The provisioning templates' store (SQLite, `provisioning-templates.sqlite` in the data dir): one
 * row per template and one per template version. A template's settings are a JSON column only
 * this store writes; a version's body is kept as the text the operator sent (DescribeProvisioning
 * TemplateVersion returns it as sent). Synchronous calls (better-sqlite3): an operation made of
 * several calls inside {@link ProvisioningTemplateStore.transaction} is atomic.
 */

export class ProvisioningStoreError extends CloudError {
  override name = 'ProvisioningStoreError';
}

export interface PreProvisioningHook {
  readonly targetArn: string;
  readonly payloadVersion: string;
}

export interface TemplateRecord {
  readonly templateName: string;
  readonly description?: string;
  readonly enabled: boolean;
  readonly provisioningRoleArn: string;
  readonly preProvisioningHook?: PreProvisioningHook;
  readonly type: 'FLEET_PROVISIONING' | 'JITP';
  readonly tags?: readonly { readonly Key: string; readonly Value?: string }[];
  /** Milliseconds since the epoch. */
  readonly creationDate: number;
  readonly lastModifiedDate: number;
  readonly defaultVersionId: number;
  /** The ID the next version gets: IDs are never reused, a deleted version's included. */
  readonly nextVersionId: number;
}

export interface VersionRecord {
  readonly versionId: number;
  readonly templateBody: string;
  /** Milliseconds since the epoch. */
  readonly creationDate: number;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** The sort key of the last item when more follow. */
  readonly next?: number;
}

export interface ProvisioningTemplateStore {
  transaction<T>(fn: () => T): T;
  insertTemplate(template: TemplateRecord): void;
  updateTemplate(template: TemplateRecord): void;
  getTemplate(templateName: string): TemplateRecord | undefined;
  /** Deletes the template and its versions. */
  deleteTemplate(templateName: string): void;
  countTemplates(): number;
  /** Templates in creation order after the `after` key. */
  listTemplates(after: number | undefined, limit: number): Page<TemplateRecord>;
  insertVersion(templateName: string, version: VersionRecord): void;
  getVersion(templateName: string, versionId: number): VersionRecord | undefined;
  deleteVersion(templateName: string, versionId: number): void;
  countVersions(templateName: string): number;
  /** Versions by ID after `after`. */
  listVersions(templateName: string, after: number | undefined, limit: number): Page<VersionRecord>;
  close(): void;
}

const ROLE = { holds: 'provisioning templates store', lost: 'provisioning templates and their versions' } as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS templates (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS template_versions (
  template_name TEXT NOT NULL REFERENCES templates(name) ON DELETE CASCADE,
  version_id INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (template_name, version_id)
) WITHOUT ROWID;
`;

interface TemplateRow {
  seq: number;
  data: string;
}
interface VersionRow {
  version_id: number;
  created_at: number;
  body: string;
}

function parseRecord(data: string): TemplateRecord {
  try {
    // Our own write: only this store fills the column, from records the service built.
    return JSON.parse(data) as TemplateRecord;
  } catch (cause) {
    throw new ProvisioningStoreError('PROVISIONING_STORE_CORRUPT', 'a stored provisioning template is not valid JSON', {
      cause,
    });
  }
}

const version = (row: VersionRow): VersionRecord => ({
  versionId: row.version_id,
  templateBody: row.body,
  creationDate: row.created_at,
});

export interface SqliteProvisioningStoreOptions {
  /** Database file; `:memory:` for a throwaway store. */
  readonly path: string;
}

export function openSqliteProvisioningStore(options: SqliteProvisioningStoreOptions): ProvisioningTemplateStore {
  const db = openSqliteFile(options.path, ROLE);
  db.pragma('journal_mode = WAL');
  // Operator writes, a few a minute: FULL costs nothing that matters and survives a power cut.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.exec(SCHEMA);

  const q = {
    insert: db.prepare('INSERT INTO templates (name, data) VALUES (?, ?)'),
    update: db.prepare('UPDATE templates SET data = ? WHERE name = ?'),
    get: db.prepare<[string], TemplateRow>('SELECT seq, data FROM templates WHERE name = ?'),
    delete: db.prepare('DELETE FROM templates WHERE name = ?'),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM templates'),
    list: db.prepare<[number, number], TemplateRow>(
      'SELECT seq, data FROM templates WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    insertVersion: db.prepare(
      'INSERT INTO template_versions (template_name, version_id, created_at, body) VALUES (?, ?, ?, ?)',
    ),
    getVersion: db.prepare<[string, number], VersionRow>(
      'SELECT version_id, created_at, body FROM template_versions WHERE template_name = ? AND version_id = ?',
    ),
    deleteVersion: db.prepare('DELETE FROM template_versions WHERE template_name = ? AND version_id = ?'),
    countVersions: db.prepare<[string], { n: number }>(
      'SELECT count(*) AS n FROM template_versions WHERE template_name = ?',
    ),
    listVersions: db.prepare<[string, number, number], VersionRow>(
      `SELECT version_id, created_at, body FROM template_versions
         WHERE template_name = ? AND version_id > ? ORDER BY version_id LIMIT ?`,
    ),
  };

  return {
    transaction: (fn) => db.transaction(fn)(),
    insertTemplate: (t) => void q.insert.run(t.templateName, JSON.stringify(t)),
    updateTemplate: (t) => void q.update.run(JSON.stringify(t), t.templateName),
    getTemplate(name) {
      const row = q.get.get(name);
      return row === undefined ? undefined : parseRecord(row.data);
    },
    deleteTemplate: (name) => void q.delete.run(name),
    countTemplates: () => q.count.get()?.n ?? 0,
    listTemplates(after, limit) {
      // One more than asked: whether another page follows without a second query.
      const rows = q.list.all(after ?? 0, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map((r) => parseRecord(r.data)),
        ...(rows.length > limit && last !== undefined ? { next: last.seq } : {}),
      };
    },
    insertVersion: (name, v) => void q.insertVersion.run(name, v.versionId, v.creationDate, v.templateBody),
    getVersion(name, versionId) {
      const row = q.getVersion.get(name, versionId);
      return row === undefined ? undefined : version(row);
    },
    deleteVersion: (name, versionId) => void q.deleteVersion.run(name, versionId),
    countVersions: (name) => q.countVersions.get(name)?.n ?? 0,
    listVersions(name, after, limit) {
      const rows = q.listVersions.all(name, after ?? 0, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map(version),
        ...(rows.length > limit && last !== undefined ? { next: last.version_id } : {}),
      };
    },
    close: () => db.close(),
  };
}
