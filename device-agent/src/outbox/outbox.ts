import { existsSync, renameSync } from 'node:fs';
import { type OutboxReport, type Reading, readingSchema, utf8Length } from '@pifleet/protocol';
import Database from 'better-sqlite3';
import type { SealedBatch } from '../core/batcher.js';
import { OutboxError } from '../errors.js';

/** A stored batch, oldest first by `id`. `bootId`/`seq` are the ones it was sealed with, kept across restarts. */
export interface OutboxEntry {
  readonly id: number;
  readonly bootId: string;
  readonly seq: number;
  readonly readings: number;
  readonly bytes: number;
  readonly json: string;
  readonly createdAt: number;
}

/** Oldest batches deleted to stay under the disk bound by a write. */
export interface Dropped {
  readonly droppedBatches: number;
  readonly droppedReadings: number;
}

export interface PutResult extends Dropped {
  readonly id: number;
}

/** What happened when the file could not be opened as a healthy database. */
export interface OutboxRecovery {
  readonly reason: string;
  /** Where the unreadable file was moved. */
  readonly movedTo: string;
  /** Batches read back from it and kept. */
  readonly salvagedBatches: number;
  readonly salvagedReadings: number;
  /** Whether reading stopped at damaged pages (so some batches were lost, count unknown). */
  readonly incomplete: boolean;
}

/** A sampled reading of the open batch `(bootId, seq)`, persisted before that batch is sealed. */
export interface JournalEntry {
  readonly bootId: string;
  readonly seq: number;
  readonly reading: Reading;
  /** `JSON.stringify(reading)`, and its length in UTF-8 bytes (counted against the disk bound). */
  readonly json: string;
  readonly bytes: number;
}

/** Readings journaled under a batch identity that was never sealed: the process stopped first. */
export interface UnsealedBatch {
  readonly bootId: string;
  readonly seq: number;
  /** In the order they were journaled. */
  readonly readings: readonly Reading[];
  /** Journal rows that could not be read back as readings, left out. */
  readonly unreadable: number;
}

/**
 * Durable store between the sampler and the publisher: the readings of the open batch as they are
 * sampled (the journal), and sealed batches until the broker acknowledges them.
 */
export interface Outbox {
  /**
   * Persists one reading of the open batch `(bootId, seq)`, kept until that batch is put; drops the
   * oldest batches when the batches and the journal together would be over the byte bound.
   */
  journal(entry: JournalEntry): Dropped;
  /**
   * Stores a sealed batch (durably, before it is sent) and deletes the journal's readings of the
   * same `(bootId, seq)` in one transaction, so a reading is never in both or in neither. Drops the
   * oldest batches when the batches and the journal together are over the byte bound.
   */
  put(batch: SealedBatch): PutResult;
  /** The journal's readings whose batch was never put (left by a process that stopped), oldest first. */
  unsealed(): UnsealedBatch[];
  /** Up to `limit` oldest batches whose ids are not in `exclude` (those already in flight). */
  next(limit: number, exclude?: ReadonlySet<number>): OutboxEntry[];
  /** Deletes an acknowledged batch; false if it was already gone (dropped meanwhile). */
  ack(id: number): boolean;
  stats(): OutboxReport;
  close(): void;
}

/** SQLite `synchronous` of the journal's writes (one per sampled reading). */
export type ReadingSync = 'normal' | 'full' | 'off';

export interface OpenOutboxOptions {
  /** File path, or `:memory:` (no durability; for simulated fleets). */
  readonly path: string;
  readonly maxBytes: number;
  /** SQLite `synchronous` of sealed batches and acknowledgements (default `full`). */
  readonly synchronous?: 'full' | 'normal';
  /** SQLite `synchronous` of journal writes (default `normal`: no fsync; survives a process kill). */
  readonly readingSync?: ReadingSync;
  /** Clock for `createdAt` and the name of a moved-aside corrupt file. */
  readonly now?: () => number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  boot_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  readings INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- The journal: readings of open batches. No index and no AUTOINCREMENT, so a reading's insert
-- changes one page (its table leaf); the table holds about one open batch, so scans are short.
CREATE TABLE IF NOT EXISTS open_readings (
  boot_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  reading TEXT NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0), ('droppedReadings', 0);
`;

interface Row {
  id: number;
  boot_id: string;
  seq: number;
  readings: number;
  bytes: number;
  payload: string;
  created_at: number;
}

const toEntry = (r: Row): OutboxEntry => ({
  id: r.id,
  bootId: r.boot_id,
  seq: r.seq,
  readings: r.readings,
  bytes: r.bytes,
  json: r.payload,
  createdAt: r.created_at,
});

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

function openDatabase(path: string, synchronous: 'full' | 'normal'): Database.Database {
  const db = new Database(path);
  try {
    // Each journal write commits one table page to the WAL: with 1 KiB pages a ~100-byte reading
    // costs ~1.4 KiB of WAL instead of ~4.4 KiB at SQLite's default 4 KiB (measured, bench/agent),
    // which is what an SD card ends up writing. Takes effect only when the file is created.
    db.pragma('page_size = 1024');
    if (path !== ':memory:') db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') {
      const err = new Error(`quick_check: ${String(check)}`) as Error & { code: string };
      err.code = 'SQLITE_CORRUPT';
      throw err;
    }
    db.exec(SCHEMA);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

interface JournalRow {
  boot_id: string;
  seq: number;
  bytes: number;
  reading: string;
}

/**
 * Whether a row read from a damaged file is a whole batch: a page past the end of a truncated file
 * reads as zeros, which yields a payload of the right length that is not the JSON that was stored.
 */
function intact(row: Row): boolean {
  if (typeof row.payload !== 'string' || typeof row.boot_id !== 'string') return false;
  if (utf8Length(row.payload) !== row.bytes) return false;
  try {
    JSON.parse(row.payload);
    return true;
  } catch {
    return false;
  }
}

/** Reads every batch it can from a damaged database, stepping over unreadable ranges. */
function salvage(path: string): { rows: Row[]; journal: JournalRow[]; incomplete: boolean } {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true });
    // A truncated file fails SQLite's page-count check unless the schema is writable, which
    // better-sqlite3's defensive mode forbids; this connection only reads the moved-aside copy.
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
  } catch {
    return { rows: [], journal: [], incomplete: true };
  }
  const rows: Row[] = [];
  const journal: JournalRow[] = [];
  let incomplete = false;
  try {
    const after = db.prepare<[number], Row>(
      'SELECT id, boot_id, seq, readings, bytes, payload, created_at FROM batches WHERE id > ? ORDER BY id LIMIT 1',
    );
    let maxId = Number.MAX_SAFE_INTEGER;
    try {
      const seqRow = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").get() as
        | { seq: number }
        | undefined;
      if (seqRow) maxId = seqRow.seq;
    } catch {
      incomplete = true;
    }
    let cursor = 0;
    let skip = 1;
    while (cursor < maxId) {
      try {
        const row = after.get(cursor);
        if (!row) break;
        if (intact(row)) rows.push(row);
        else incomplete = true;
        cursor = row.id;
        skip = 1;
      } catch {
        // A damaged page: jump ahead, further each time, until rows are readable again.
        incomplete = true;
        cursor += skip;
        skip *= 2;
      }
    }
  } catch {
    incomplete = true;
  }
  try {
    // The journal is about one open batch: read whole, or not at all.
    for (const r of db
      .prepare('SELECT boot_id, seq, bytes, reading FROM open_readings ORDER BY rowid')
      .all() as JournalRow[]) {
      if (typeof r.boot_id === 'string' && typeof r.reading === 'string') journal.push(r);
    }
  } catch {
    incomplete = true;
  } finally {
    try {
      db.close();
    } catch {
      // already unusable
    }
  }
  return { rows, journal, incomplete };
}

function moveAside(path: string, stamp: number): string {
  const aside = `${path}.corrupt-${stamp}`;
  renameSync(path, aside);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
  }
  return aside;
}

/**
 * Opens (or creates) the SQLite outbox. A file that is not a database or is damaged does not stop
 * the agent: it is moved aside as `<path>.corrupt-<ms>`, every readable batch is copied into a
 * fresh outbox, and `recovery` says what happened.
 */
export function openOutbox(opts: OpenOutboxOptions): { outbox: Outbox; recovery?: OutboxRecovery } {
  const synchronous = opts.synchronous ?? 'full';
  const now = opts.now ?? Date.now;
  let db: Database.Database;
  let recovery: OutboxRecovery | undefined;
  try {
    db = openDatabase(opts.path, synchronous);
  } catch (err) {
    if (!isCorruption(err) || opts.path === ':memory:') {
      throw new OutboxError('OUTBOX_OPEN_FAILED', 'cannot open the outbox database', {
        cause: err,
        data: { path: opts.path },
      });
    }
    const movedTo = moveAside(opts.path, now());
    const { rows, journal, incomplete } = salvage(movedTo);
    db = openDatabase(opts.path, synchronous);
    const insert = db.prepare(
      'INSERT INTO batches (boot_id, seq, readings, bytes, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const insertReading = db.prepare('INSERT INTO open_readings (boot_id, seq, bytes, reading) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (const r of rows) insert.run(r.boot_id, r.seq, r.readings, r.bytes, r.payload, r.created_at);
      for (const r of journal) insertReading.run(r.boot_id, r.seq, r.bytes, r.reading);
    })();
    recovery = {
      reason: (err as Error).message,
      movedTo,
      salvagedBatches: rows.length,
      salvagedReadings: rows.reduce((n, r) => n + r.readings, 0),
      incomplete,
    };
  }
  const outbox = createSqliteOutbox(db, {
    maxBytes: opts.maxBytes,
    now,
    synchronous,
    readingSync: opts.readingSync ?? 'normal',
  });
  return recovery ? { outbox, recovery } : { outbox };
}

function createSqliteOutbox(
  db: Database.Database,
  o: { maxBytes: number; now: () => number; synchronous: 'full' | 'normal'; readingSync: ReadingSync },
): Outbox {
  const { maxBytes, now } = o;
  const insert = db.prepare(
    'INSERT INTO batches (boot_id, seq, readings, bytes, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const oldest = db.prepare<[number], { id: number; bytes: number; readings: number }>(
    'SELECT id, bytes, readings FROM batches WHERE id <> ? ORDER BY id LIMIT 1',
  );
  const del = db.prepare<[number]>('DELETE FROM batches WHERE id = ?');
  const delReturning = db.prepare<[number], { bytes: number }>('DELETE FROM batches WHERE id = ? RETURNING bytes');
  const bump = db.prepare<[number, string]>('UPDATE counters SET value = value + ? WHERE name = ?');
  const select = db.prepare<[number], Row>(
    'SELECT id, boot_id, seq, readings, bytes, payload, created_at FROM batches ORDER BY id LIMIT ?',
  );
  const totals = db.prepare('SELECT count(*) AS depth, coalesce(sum(bytes), 0) AS bytes FROM batches').get() as {
    depth: number;
    bytes: number;
  };
  const counter = db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?');
  const journalInsert = db.prepare<[string, number, number, string]>(
    'INSERT INTO open_readings (boot_id, seq, bytes, reading) VALUES (?, ?, ?, ?)',
  );
  const journalSize = db.prepare<[string, number], { bytes: number }>(
    'SELECT coalesce(sum(bytes), 0) AS bytes FROM open_readings WHERE boot_id = ? AND seq = ?',
  );
  const journalDelete = db.prepare<[string, number]>('DELETE FROM open_readings WHERE boot_id = ? AND seq = ?');
  const journalAll = db.prepare<[], JournalRow>(
    'SELECT boot_id, seq, bytes, reading FROM open_readings ORDER BY rowid',
  );
  const journalTotal = db.prepare('SELECT coalesce(sum(bytes), 0) AS bytes FROM open_readings').get() as {
    bytes: number;
  };

  let depth = totals.depth;
  /** Payload bytes of stored batches, and of journaled readings: both count against `maxBytes`. */
  let bytes = totals.bytes;
  let journalBytes = journalTotal.bytes;
  let sent = 0;
  let closed = false;

  // Journal writes run at `readingSync`, everything else at `synchronous`; SQLite applies a
  // connection's `synchronous` per transaction, and in WAL mode a FULL commit fsyncs the WAL file,
  // so it also makes every earlier (unsynced) journal frame durable. Checked with strace: journal
  // commits at NORMAL or OFF only pwrite their frames to `-wal`; the next FULL commit issues one
  // fsync on that file descriptor (bench/agent counts 0 fsyncs per journaled reading, 1 at FULL,
  // ~2 per seal and acknowledgement). Automatic checkpoints are off
  // while journaling: a checkpoint run by a `synchronous=OFF` commit would not sync the WAL before
  // copying it into the database, and power loss could then damage stored batches as well. They
  // run after the next seal or acknowledgement instead, at `synchronous`.
  const switching = o.readingSync !== o.synchronous;
  const journalMode = `PRAGMA synchronous = ${o.readingSync.toUpperCase()}; PRAGMA wal_autocheckpoint = 0;`;
  const storeMode = `PRAGMA synchronous = ${o.synchronous.toUpperCase()}; PRAGMA wal_autocheckpoint = 1000;`;
  let mode: 'journal' | 'store' = 'store';
  const enter = (next: 'journal' | 'store') => {
    if (!switching || mode === next) return;
    db.exec(next === 'journal' ? journalMode : storeMode);
    mode = next;
  };

  const put = db.transaction((b: SealedBatch): PutResult => {
    const id = Number(insert.run(b.bootId, b.seq, b.readings, b.bytes, b.json, now()).lastInsertRowid);
    depth += 1;
    bytes += b.bytes;
    const journaled = journalSize.get(b.bootId, b.seq)?.bytes ?? 0;
    if (journaled > 0) {
      journalDelete.run(b.bootId, b.seq);
      journalBytes -= journaled;
    }
    return { id, ...shrink(id) };
  });

  /** Deletes the oldest batches (never `keep`) until batches and journal fit the bound; in a transaction. */
  const shrink = (keep: number): Dropped => {
    let droppedBatches = 0;
    let droppedReadings = 0;
    while (bytes + journalBytes > maxBytes) {
      const victim = oldest.get(keep);
      if (!victim) break;
      del.run(victim.id);
      depth -= 1;
      bytes -= victim.bytes;
      droppedBatches += 1;
      droppedReadings += victim.readings;
    }
    if (droppedBatches > 0) {
      bump.run(droppedBatches, 'dropped');
      bump.run(droppedReadings, 'droppedReadings');
    }
    return { droppedBatches, droppedReadings };
  };

  const journalAndShrink = db.transaction((e: JournalEntry): Dropped => {
    journalInsert.run(e.bootId, e.seq, e.bytes, e.json);
    journalBytes += e.bytes;
    return shrink(-1);
  });
  const NOTHING_DROPPED: Dropped = { droppedBatches: 0, droppedReadings: 0 };

  const guard = () => {
    if (closed) throw new OutboxError('OUTBOX_CLOSED', 'the outbox is closed');
  };

  return {
    journal(e) {
      guard();
      if (bytes + journalBytes + e.bytes > maxBytes) {
        // The outbox is full: this write also drops batches, so it runs at the stores' sync level
        // (the drop counters are persisted). At most once per batch's worth of readings.
        enter('store');
        return journalAndShrink(e);
      }
      enter('journal');
      journalInsert.run(e.bootId, e.seq, e.bytes, e.json);
      journalBytes += e.bytes;
      return NOTHING_DROPPED;
    },
    put(b) {
      guard();
      enter('store');
      return put(b);
    },
    unsealed() {
      guard();
      const groups = new Map<string, { bootId: string; seq: number; readings: Reading[]; unreadable: number }>();
      for (const row of journalAll.all()) {
        const key = `${row.seq}/${row.boot_id}`;
        let g = groups.get(key);
        if (!g) {
          g = { bootId: row.boot_id, seq: row.seq, readings: [], unreadable: 0 };
          groups.set(key, g);
        }
        const reading = parseReading(row.reading);
        if (reading) g.readings.push(reading);
        else g.unreadable += 1;
      }
      return [...groups.values()];
    },
    next(limit, exclude = new Set()) {
      guard();
      if (limit <= 0) return [];
      return select
        .all(limit + exclude.size)
        .filter((r) => !exclude.has(r.id))
        .slice(0, limit)
        .map(toEntry);
    },
    ack(id) {
      guard();
      enter('store');
      const row = delReturning.get(id);
      if (!row) return false;
      depth -= 1;
      bytes -= row.bytes;
      sent += 1;
      return true;
    },
    stats() {
      guard();
      return {
        depth,
        bytes: bytes + journalBytes,
        dropped: counter.get('dropped')?.value ?? 0,
        droppedReadings: counter.get('droppedReadings')?.value ?? 0,
        sent,
      };
    },
    close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

/** A journaled reading read back; undefined when the row is not one (damaged, or written by a bug). */
function parseReading(json: string): Reading | undefined {
  try {
    const r = readingSchema.safeParse(JSON.parse(json));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
