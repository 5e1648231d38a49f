import { existsSync, renameSync } from 'node:fs';
import type { OutboxReport } from '@pifleet/protocol';
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

export interface PutResult {
  readonly id: number;
  /** Oldest batches deleted to stay under the disk bound by this put. */
  readonly droppedBatches: number;
  readonly droppedReadings: number;
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

/** Durable store of sealed batches between the batcher and the publisher. */
export interface Outbox {
  /** Stores a batch (durably, before it is sent); drops the oldest when over the byte bound. */
  put(batch: SealedBatch): PutResult;
  /** Up to `limit` oldest batches whose ids are not in `exclude` (those already in flight). */
  next(limit: number, exclude?: ReadonlySet<number>): OutboxEntry[];
  /** Deletes an acknowledged batch; false if it was already gone (dropped meanwhile). */
  ack(id: number): boolean;
  stats(): OutboxReport;
  close(): void;
}

export interface OpenOutboxOptions {
  /** File path, or `:memory:` (no durability; for simulated fleets). */
  readonly path: string;
  readonly maxBytes: number;
  readonly synchronous?: 'full' | 'normal';
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

/** Reads every batch it can from a damaged database, stepping over unreadable ranges. */
function salvage(path: string): { rows: Row[]; incomplete: boolean } {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true });
    // A truncated file fails SQLite's page-count check unless the schema is writable, which
    // better-sqlite3's defensive mode forbids; this connection only reads the moved-aside copy.
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
  } catch {
    return { rows: [], incomplete: true };
  }
  const rows: Row[] = [];
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
        if (typeof row.payload === 'string' && typeof row.boot_id === 'string') rows.push(row);
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
  } finally {
    try {
      db.close();
    } catch {
      // already unusable
    }
  }
  return { rows, incomplete };
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
    const { rows, incomplete } = salvage(movedTo);
    db = openDatabase(opts.path, synchronous);
    const insert = db.prepare(
      'INSERT INTO batches (boot_id, seq, readings, bytes, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    db.transaction(() => {
      for (const r of rows) insert.run(r.boot_id, r.seq, r.readings, r.bytes, r.payload, r.created_at);
    })();
    recovery = {
      reason: (err as Error).message,
      movedTo,
      salvagedBatches: rows.length,
      salvagedReadings: rows.reduce((n, r) => n + r.readings, 0),
      incomplete,
    };
  }
  const outbox = createSqliteOutbox(db, opts.maxBytes, now);
  return recovery ? { outbox, recovery } : { outbox };
}

function createSqliteOutbox(db: Database.Database, maxBytes: number, now: () => number): Outbox {
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

  let depth = totals.depth;
  let bytes = totals.bytes;
  let sent = 0;
  let closed = false;

  const put = db.transaction((b: SealedBatch): PutResult => {
    const id = Number(insert.run(b.bootId, b.seq, b.readings, b.bytes, b.json, now()).lastInsertRowid);
    depth += 1;
    bytes += b.bytes;
    let droppedBatches = 0;
    let droppedReadings = 0;
    while (bytes > maxBytes) {
      const victim = oldest.get(id);
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
    return { id, droppedBatches, droppedReadings };
  });

  const guard = () => {
    if (closed) throw new OutboxError('OUTBOX_CLOSED', 'the outbox is closed');
  };

  return {
    put(b) {
      guard();
      return put(b);
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
        bytes,
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
