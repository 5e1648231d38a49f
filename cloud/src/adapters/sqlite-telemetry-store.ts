import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { MetricValue, TelemetryBatch } from '@pifleet/protocol';
import type Database from 'better-sqlite3';
import { supersedes } from '../core/telemetry/connectivity.js';
import { TelemetryStoreError } from '../core/telemetry/errors.js';
import { batchToStoredReadings, latestValuesOf, storedReadingKey } from '../core/telemetry/keys.js';
import { encodeConnectivityPageToken, encodePageToken } from '../core/telemetry/page-token.js';
import { planConnectivityListing, planQuery } from '../core/telemetry/store-query.js';
import { CloudError } from '../errors.js';
import type {
  ConnectivityPage,
  ConnectivityRecord,
  LatestValue,
  ManagedTelemetryStore,
  PutBatchResult,
  PutConnectivityResult,
  StoredReading,
  TelemetryPage,
  TelemetryQuery,
} from '../ports/telemetry-store.js';
import { type Checkpointer, startCheckpointer } from './sqlite-checkpointer.js';
import { DATA_FILE_ROLES, DataFileError, dataFileError, openSqliteFile } from './sqlite-open.js';

/**
 * SQLite telemetry store: the local IoT Core's default, one file in its data directory.
 *
 * WAL journal (synchronous=NORMAL: a power cut can lose the last transactions, never corrupt the
 * file; the broker has acknowledged the message before any rule runs, as in AWS), checkpoints on
 * a worker thread instead of inside commits, prepared statements, and group commit: the batches
 * handed to `putBatch` in one turn of the event loop are written in one transaction, and each
 * caller's promise settles only after that transaction commits (so a caller that acknowledges
 * after `putBatch` still acknowledges only what is stored). A commit per batch was the largest
 * single cost of the core at 200 batches/s (23 % of its main thread); a group shares it.
 * If a group's transaction fails, its batches are written again one transaction each, so a batch
 * that cannot be written fails alone. The batch table's primary key
 * `(thing, boot_id, seq)` is the dedupe index: a resent batch finds its row and writes nothing.
 * Readings are keyed `(thing, sk)` with the shared sort key from `core/telemetry/keys.ts`, so
 * ordering and page tokens match the DynamoDB store exactly.
 */
/** The store's file name inside the local IoT Core's data directory. */
export const SQLITE_TELEMETRY_FILENAME = 'telemetry.db';

export interface SqliteTelemetryStoreOptions {
  /** Database file; `:memory:` for a private in-memory store. Parent directories are created. */
  readonly file: string;
  readonly clock?: { now(): number };
  /**
   * Most batches written in one transaction (default {@link DEFAULT_MAX_GROUP}); a group this
   * large is written at once instead of at the end of the event-loop turn.
   */
  readonly maxGroup?: number;
}

/** Bounds a group's transaction (about 5,000 readings at the agent's default batch size). */
export const DEFAULT_MAX_GROUP = 500;

interface Waiting {
  readonly batch: TelemetryBatch;
  readonly resolve: (result: PutBatchResult) => void;
  readonly reject: (err: unknown) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS telemetry_batches (
  thing TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sealed_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  readings INTEGER NOT NULL,
  PRIMARY KEY (thing, boot_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS telemetry_readings (
  thing TEXT NOT NULL,
  sk TEXT NOT NULL,
  sensor TEXT NOT NULL,
  ts INTEGER NOT NULL,
  boot_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  metrics TEXT NOT NULL,
  PRIMARY KEY (thing, sk)
) WITHOUT ROWID;
-- Until 2026-12 readings also had an index by (thing, sensor, sk): a second B-tree insert per
-- reading, 30 % of the store's CPU at 10,000 things. A sensor is now filtered in the thing's time
-- range, as the DynamoDB store's FilterExpression does.
DROP INDEX IF EXISTS telemetry_readings_by_sensor;
CREATE TABLE IF NOT EXISTS telemetry_latest (
  thing TEXT NOT NULL,
  sensor TEXT NOT NULL,
  metric TEXT NOT NULL,
  value TEXT NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (thing, sensor, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thing_connectivity (
  thing TEXT PRIMARY KEY,
  record TEXT NOT NULL
) WITHOUT ROWID;
`;

interface ReadingRow {
  sk: string;
  sensor: string;
  ts: number;
  boot_id: string;
  seq: number;
  idx: number;
  metrics: string;
}

type Statements = ReturnType<typeof prepare>;

interface Opened {
  readonly s: Statements;
  readonly writeBatch: (batch: TelemetryBatch) => PutBatchResult;
  /** Writes every batch in one transaction; the results in the same order. */
  readonly writeGroup: (batches: readonly TelemetryBatch[]) => PutBatchResult[];
  readonly writeConnectivity: (record: ConnectivityRecord) => PutConnectivityResult;
}

function prepare(db: Database.Database) {
  const readingColumns = 'sk, sensor, ts, boot_id, seq, idx, metrics';
  return {
    insertBatch: db.prepare<[string, string, number, number, number, number]>(
      'INSERT OR IGNORE INTO telemetry_batches (thing, boot_id, seq, sealed_at, received_at, readings) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertReading: db.prepare<[string, string, string, number, string, number, number, string]>(
      'INSERT OR IGNORE INTO telemetry_readings (thing, sk, sensor, ts, boot_id, seq, idx, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    upsertLatest: db.prepare<[string, string, string, string, number]>(
      `INSERT INTO telemetry_latest (thing, sensor, metric, value, ts) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (thing, sensor, metric) DO UPDATE SET value = excluded.value, ts = excluded.ts
       WHERE excluded.ts >= telemetry_latest.ts`,
    ),
    queryAll: db.prepare<
      { thing: string; lower: string; upper: string; after: string; metric: string | null; limit: number },
      ReadingRow
    >(
      `SELECT ${readingColumns} FROM telemetry_readings
       WHERE thing = @thing AND sk >= @lower AND sk > @after AND sk <= @upper
         AND (@metric IS NULL OR json_type(metrics, @metric) IS NOT NULL)
       ORDER BY sk LIMIT @limit`,
    ),
    queryBySensor: db.prepare<
      {
        thing: string;
        sensor: string;
        lower: string;
        upper: string;
        after: string;
        metric: string | null;
        limit: number;
      },
      ReadingRow
    >(
      `SELECT ${readingColumns} FROM telemetry_readings
       WHERE thing = @thing AND sensor = @sensor AND sk >= @lower AND sk > @after AND sk <= @upper
         AND (@metric IS NULL OR json_type(metrics, @metric) IS NOT NULL)
       ORDER BY sk LIMIT @limit`,
    ),
    latest: db.prepare<[string], { sensor: string; metric: string; value: string; ts: number }>(
      'SELECT sensor, metric, value, ts FROM telemetry_latest WHERE thing = ? ORDER BY sensor, metric',
    ),
    getConnectivity: db.prepare<[string], { record: string }>('SELECT record FROM thing_connectivity WHERE thing = ?'),
    // The primary key's order, so a page is a range scan of the key from the token on.
    listConnectivity: db.prepare<{ after: string; limit: number }, { thing: string; record: string }>(
      'SELECT thing, record FROM thing_connectivity WHERE thing > @after ORDER BY thing LIMIT @limit',
    ),
    putConnectivity: db.prepare<[string, string]>(
      'INSERT INTO thing_connectivity (thing, record) VALUES (?, ?) ON CONFLICT (thing) DO UPDATE SET record = excluded.record',
    ),
    countAll: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM telemetry_readings'),
    countThing: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM telemetry_readings WHERE thing = ?'),
  };
}

export function createSqliteTelemetryStore(options: SqliteTelemetryStoreOptions): ManagedTelemetryStore {
  const clock = options.clock ?? { now: () => Date.now() };
  const maxGroup = options.maxGroup ?? DEFAULT_MAX_GROUP;
  if (!Number.isInteger(maxGroup) || maxGroup < 1) throw new RangeError('maxGroup must be a positive integer');
  let db: Database.Database | undefined;
  let opened: Opened | undefined;
  let checkpointer: Checkpointer | undefined;
  let waiting: Waiting[] = [];
  let flushScheduled: NodeJS.Immediate | undefined;

  function open(): Opened {
    if (opened === undefined)
      throw new TelemetryStoreError('SQLite telemetry store is not started', { retryable: false });
    return opened;
  }

  function guard<T>(operation: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof CloudError) throw err;
      throw new TelemetryStoreError(`SQLite ${operation} failed`, { cause: err, data: { operation } });
    }
  }

  /** Writes what is waiting: one transaction for the group, or one per batch if that fails. */
  function flush(): void {
    if (flushScheduled !== undefined) clearImmediate(flushScheduled);
    flushScheduled = undefined;
    const group = waiting;
    waiting = [];
    if (group.length === 0) return;
    let handle: Opened;
    try {
      handle = open();
    } catch (err) {
      for (const w of group) w.reject(err);
      return;
    }
    if (group.length > 1) {
      let results: PutBatchResult[] | undefined;
      try {
        results = handle.writeGroup(group.map((w) => w.batch));
      } catch {
        // Rolled back as a whole: each batch gets its own transaction below, so one that cannot
        // be written does not take the others with it.
      }
      if (results !== undefined) {
        for (let i = 0; i < group.length; i++) group[i]?.resolve(results[i] as PutBatchResult);
        return;
      }
    }
    for (const w of group) {
      try {
        w.resolve(guard('putBatch', () => handle.writeBatch(w.batch)));
      } catch (err) {
        w.reject(err);
      }
    }
  }

  return {
    async start() {
      if (db !== undefined) return;
      let handle: Database.Database | undefined;
      try {
        if (options.file !== ':memory:') mkdirSync(path.dirname(options.file), { recursive: true });
        handle = openSqliteFile(options.file, DATA_FILE_ROLES.telemetry);
        handle.pragma('journal_mode = WAL');
        handle.pragma('synchronous = NORMAL');
        handle.pragma('busy_timeout = 5000');
        handle.exec(SCHEMA);
        if (options.file !== ':memory:') {
          // Checkpoints run on a worker thread (see sqlite-checkpointer.ts), not in commits here.
          handle.pragma('wal_autocheckpoint = 0');
          checkpointer = startCheckpointer(options.file);
        }
        const s = prepare(handle);
        const write = (batch: TelemetryBatch): PutBatchResult => {
          const readings = batchToStoredReadings(batch);
          const fresh = s.insertBatch.run(
            batch.thingName,
            batch.bootId,
            batch.seq,
            batch.sealedAt,
            clock.now(),
            readings.length,
          );
          if (fresh.changes === 0) return { stored: 0, duplicate: true };
          let stored = 0;
          for (const r of readings) {
            stored += s.insertReading.run(
              r.thingName,
              storedReadingKey(r),
              r.sensor,
              r.ts,
              r.bootId,
              r.seq,
              r.index,
              JSON.stringify(r.metrics),
            ).changes;
          }
          for (const l of latestValuesOf(batch)) {
            s.upsertLatest.run(batch.thingName, l.sensor, l.metric, JSON.stringify(l.value), l.ts);
          }
          return { stored, duplicate: false };
        };
        const writeBatch = handle.transaction(write);
        const writeGroup = handle.transaction((batches: readonly TelemetryBatch[]) => batches.map(write));
        const writeConnectivity = handle.transaction((record: ConnectivityRecord): PutConnectivityResult => {
          const row = s.getConnectivity.get(record.thingName);
          const current = row === undefined ? undefined : writtenHere<ConnectivityRecord>(row.record);
          if (!supersedes(record, current)) return { applied: false };
          s.putConnectivity.run(record.thingName, JSON.stringify(record));
          return { applied: true };
        });
        opened = { s, writeBatch, writeGroup, writeConnectivity };
        db = handle;
      } catch (err) {
        await checkpointer?.stop();
        checkpointer = undefined;
        handle?.close();
        // A file the core cannot use is the operator's to fix: say which one and how.
        const unusable = dataFileError(err, options.file, DATA_FILE_ROLES.telemetry);
        if (unusable instanceof DataFileError) throw unusable;
        throw new TelemetryStoreError('cannot open SQLite telemetry store', {
          cause: err,
          retryable: false,
          data: { file: options.file },
        });
      }
    },

    async stop() {
      // What callers handed over before the stop is written, not dropped.
      flush();
      const handle = db;
      db = undefined;
      opened = undefined;
      const c = checkpointer;
      checkpointer = undefined;
      await c?.stop();
      handle?.close();
    },

    putBatch(batch) {
      try {
        open();
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<PutBatchResult>((resolve, reject) => {
        waiting.push({ batch, resolve, reject });
        if (waiting.length >= maxGroup) flush();
        else flushScheduled ??= setImmediate(flush);
      });
    },

    async query(q: TelemetryQuery): Promise<TelemetryPage> {
      const { s } = open();
      const plan = planQuery(q);
      const { lower, upper } = plan;
      const after = plan.after ?? '';
      const metric = q.metric === undefined ? null : `$."${q.metric.replaceAll('"', '')}"`;
      const params = { thing: q.thingName, lower, upper, after, metric, limit: q.limit + 1 };
      const rows = guard('query', () =>
        q.sensor === undefined ? s.queryAll.all(params) : s.queryBySensor.all({ ...params, sensor: q.sensor }),
      );
      const page = rows.slice(0, q.limit);
      const items = page.map((row) => toReading(q.thingName, row, q.metric));
      const last = page.at(-1);
      return rows.length > q.limit && last !== undefined
        ? { items, nextToken: encodePageToken(q.thingName, last.sk) }
        : { items };
    },

    async latest(thingName): Promise<readonly LatestValue[]> {
      const { s } = open();
      return guard('latest', () =>
        s.latest.all(thingName).map((row) => ({
          sensor: row.sensor,
          metric: row.metric,
          value: writtenHere<MetricValue>(row.value),
          ts: row.ts,
        })),
      );
    },

    async putConnectivity(record) {
      const { writeConnectivity } = open();
      return guard('putConnectivity', () => writeConnectivity(record));
    },

    async getConnectivity(thingName) {
      const { s } = open();
      const row = guard('getConnectivity', () => s.getConnectivity.get(thingName));
      return row === undefined ? undefined : writtenHere<ConnectivityRecord>(row.record);
    },

    async listConnectivity(listing): Promise<ConnectivityPage> {
      const { s } = open();
      const { after } = planConnectivityListing(listing);
      // '' sorts before every thing name: the first page.
      const rows = guard('listConnectivity', () =>
        s.listConnectivity.all({ after: after ?? '', limit: listing.limit + 1 }),
      );
      const page = rows.slice(0, listing.limit);
      const items = page.map((row) => writtenHere<ConnectivityRecord>(row.record));
      const last = page.at(-1);
      return rows.length > listing.limit && last !== undefined
        ? { items, nextToken: encodeConnectivityPageToken(last.thing) }
        : { items };
    },

    async countReadings(thingName) {
      const { s } = open();
      const row = guard('countReadings', () =>
        thingName === undefined ? s.countAll.get() : s.countThing.get(thingName),
      );
      return row?.n ?? 0;
    },
  };
}

/**
 * A JSON column of this store, read back as the shape it was written in. Only this module writes
 * these tables: `metrics` and `value` as `JSON.stringify` of a {@link TelemetryBatch}'s metrics
 * (the port takes a typed batch, which ingest decoded with the protocol's schema), `record` of a
 * {@link ConnectivityRecord}. So the text is our own write, and it is not parsed against a schema
 * again on every row of a query.
 */
function writtenHere<T>(text: string): T {
  return JSON.parse(text) as T;
}

function toReading(thingName: string, row: ReadingRow, metric: string | undefined): StoredReading {
  const metrics = writtenHere<Record<string, MetricValue>>(row.metrics);
  const value = metric === undefined ? undefined : metrics[metric];
  return {
    thingName,
    sensor: row.sensor,
    ts: row.ts,
    metrics: metric === undefined || value === undefined ? metrics : { [metric]: value },
    bootId: row.boot_id,
    seq: row.seq,
    index: row.idx,
  };
}
