import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

/** What the SQLite telemetry store holds for a run, read back from its file. */
export interface StoreReadback {
  /** Readings stored for the run's boots (deduplicated by the store's batch key). */
  readonly readings: number;
  readonly batches: number;
  /** Sampling → stored (reading `ts` → the store's `received_at`), ms, one value per reading. */
  readonly sampleToStoredMs: Float64Array;
  /** Sealed → stored (batch `sealed_at` → `received_at`), ms, one value per batch. */
  readonly sealedToStoredMs: Float64Array;
  /** Each of those batches' `sealed_at` (ms since the epoch), in the same order. */
  readonly sealedAtMs: Float64Array;
  /** Readings stored per second (epoch seconds → readings). */
  readonly perSecond: ReadonlyMap<number, number>;
}

/**
 * Reads the local IoT Core's SQLite telemetry store read-only: the store records its insert time
 * per batch (`received_at`), which is the "stored" end of the end-to-end latency. Only batches whose
 * boot id starts with `bootPrefix` (this run's devices) count; latency is computed for at most
 * `latencyThings` things (all batches, every reading of them).
 */
export function readStore(
  file: string,
  bootPrefix: string,
  latencyThings: readonly string[],
): StoreReadback | undefined {
  if (!existsSync(file)) return undefined;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const like = `${bootPrefix.replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
    const totals = db
      .prepare(
        "SELECT COALESCE(SUM(readings), 0) AS readings, COUNT(*) AS batches FROM telemetry_batches WHERE boot_id LIKE ? ESCAPE '\\'",
      )
      .get(like) as { readings: number; batches: number };
    const perSecond = new Map<number, number>();
    for (const row of db
      .prepare(
        "SELECT received_at / 1000 AS s, SUM(readings) AS n FROM telemetry_batches WHERE boot_id LIKE ? ESCAPE '\\' GROUP BY s",
      )
      .iterate(like) as Iterable<{ s: number; n: number }>) {
      perSecond.set(Math.floor(row.s), row.n);
    }
    const sample: number[] = [];
    const sealed: number[] = [];
    const sealedAt: number[] = [];
    const batchStmt = db.prepare(
      "SELECT boot_id, seq, sealed_at, received_at FROM telemetry_batches WHERE thing = ? AND boot_id LIKE ? ESCAPE '\\'",
    );
    const readingStmt = db.prepare('SELECT boot_id, seq, ts FROM telemetry_readings WHERE thing = ?');
    for (const thing of latencyThings) {
      const received = new Map<string, number>();
      for (const b of batchStmt.iterate(thing, like) as Iterable<{
        boot_id: string;
        seq: number;
        sealed_at: number;
        received_at: number;
      }>) {
        received.set(`${b.boot_id}\u0000${b.seq}`, b.received_at);
        sealed.push(b.received_at - b.sealed_at);
        sealedAt.push(b.sealed_at);
      }
      for (const r of readingStmt.iterate(thing) as Iterable<{ boot_id: string; seq: number; ts: number }>) {
        const at = received.get(`${r.boot_id}\u0000${r.seq}`);
        if (at !== undefined) sample.push(at - r.ts);
      }
    }
    return {
      readings: totals.readings,
      batches: totals.batches,
      sampleToStoredMs: Float64Array.from(sample),
      sealedToStoredMs: Float64Array.from(sealed),
      sealedAtMs: Float64Array.from(sealedAt),
      perSecond,
    };
  } finally {
    db.close();
  }
}
