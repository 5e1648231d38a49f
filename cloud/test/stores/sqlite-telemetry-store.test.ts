import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { TelemetryStoreError } from '../../src/core/telemetry/errors.js';
import { batchOf, describeTelemetryStore, readingsFrom } from '../../src/testing/telemetry-store-suite.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-sqlite-store-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
describeTelemetryStore('sqlite', async () => {
  const file = path.join(dir, `store-${++n}`, 'telemetry.db');
  const store = createSqliteTelemetryStore({ file });
  await store.start();
  return {
    store,
    async teardown() {
      await store.stop();
    },
  };
});

describe('SQLite telemetry store', () => {
  it('keeps what it stored across a restart (a file in the data directory)', async () => {
    const file = path.join(dir, 'restart', 'telemetry.db');
    const first = createSqliteTelemetryStore({ file });
    await first.start();
    await first.putBatch(batchOf('pi-01', 1, readingsFrom(1_700_000_000_000, 5)));
    await first.stop();
    const second = createSqliteTelemetryStore({ file });
    await second.start();
    expect(await second.countReadings('pi-01')).toBe(5);
    await expect(second.putBatch(batchOf('pi-01', 1, readingsFrom(1_700_000_000_000, 5)))).resolves.toEqual({
      stored: 0,
      duplicate: true,
    });
    await second.stop();
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
  });

  it('drops the by-sensor index of a file made before 2026-12 and still answers sensor queries from it', async () => {
    const file = path.join(dir, 'old-index', 'telemetry.db');
    const first = createSqliteTelemetryStore({ file });
    await first.start();
    await first.putBatch(batchOf('pi-01', 1, readingsFrom(1_700_000_000_000, 6)));
    await first.stop();
    const old = new Database(file);
    old.exec('CREATE INDEX telemetry_readings_by_sensor ON telemetry_readings (thing, sensor, sk)');
    old.close();
    const second = createSqliteTelemetryStore({ file });
    await second.start();
    const page = await second.query({ thingName: 'pi-01', sensor: 'door', from: 0, to: 2_000_000_000_000, limit: 2 });
    expect(page.items.map((r) => [r.sensor, r.ts])).toEqual([
      ['door', 1_700_000_001_000],
      ['door', 1_700_000_003_000],
    ]);
    const rest = await second.query({
      thingName: 'pi-01',
      sensor: 'door',
      from: 0,
      to: 2_000_000_000_000,
      limit: 2,
      nextToken: page.nextToken ?? 'missing',
    });
    expect(rest.items.map((r) => r.ts)).toEqual([1_700_000_005_000]);
    await second.stop();
    const check = new Database(file, { readonly: true });
    const indexes = check
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'telemetry_readings'")
      .all();
    check.close();
    expect(indexes).toEqual([]);
  });

  it('refuses to work before start and after stop', async () => {
    const store = createSqliteTelemetryStore({ file: path.join(dir, 'lifecycle', 'telemetry.db') });
    await expect(store.countReadings()).rejects.toBeInstanceOf(TelemetryStoreError);
    await store.start();
    expect(await store.countReadings()).toBe(0);
    await store.stop();
    await expect(store.putBatch(batchOf('pi-01', 1, readingsFrom(0, 1)))).rejects.toBeInstanceOf(TelemetryStoreError);
  });

  it('reports a database it cannot open as a store error', async () => {
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    const store = createSqliteTelemetryStore({ file: path.join(blocker, 'telemetry.db') });
    await expect(store.start()).rejects.toBeInstanceOf(TelemetryStoreError);
  });

  describe('group commit', () => {
    /** Rows a second connection sees: what is committed, not what one connection wrote. */
    function committed(file: string): number {
      const raw = new Database(file, { readonly: true });
      try {
        return (raw.prepare('SELECT COUNT(*) AS n FROM telemetry_readings').get() as { n: number }).n;
      } finally {
        raw.close();
      }
    }

    it('writes the batches of one event-loop turn together and settles each only after the commit', async () => {
      const file = path.join(dir, 'group', 'telemetry.db');
      const store = createSqliteTelemetryStore({ file });
      await store.start();
      const puts = Array.from({ length: 50 }, (_, i) =>
        store.putBatch(batchOf(`pi-${i % 5}`, i + 1, readingsFrom(0, 4))),
      );
      // Handed over, not written yet: nothing is committed until the turn ends.
      expect(committed(file)).toBe(0);
      const seen: number[] = [];
      for (const p of puts) void p.then(() => seen.push(committed(file)));
      const results = await Promise.all(puts);
      expect(results.every((r) => r.stored === 4 && !r.duplicate)).toBe(true);
      // Every caller saw all 200 readings committed when its promise settled.
      expect(seen).toEqual(Array(50).fill(200));
      await store.stop();
    });

    it('flags a resend inside the same group as a duplicate', async () => {
      const store = createSqliteTelemetryStore({ file: path.join(dir, 'group-dup', 'telemetry.db') });
      await store.start();
      const batch = batchOf('pi-01', 7, readingsFrom(0, 3));
      const [first, again] = await Promise.all([store.putBatch(batch), store.putBatch({ ...batch })]);
      expect(first).toEqual({ stored: 3, duplicate: false });
      expect(again).toEqual({ stored: 0, duplicate: true });
      expect(await store.countReadings('pi-01')).toBe(3);
      await store.stop();
    });

    it('fails only the batch that cannot be written; the rest of its group is stored', async () => {
      const store = createSqliteTelemetryStore({ file: path.join(dir, 'group-bad', 'telemetry.db') });
      await store.start();
      // A value SQLite cannot bind: the write throws inside the group's transaction.
      const bad = { ...batchOf('pi-02', 1, readingsFrom(0, 2)), sealedAt: {} as unknown as number };
      const outcomes = await Promise.allSettled([
        store.putBatch(batchOf('pi-01', 1, readingsFrom(0, 2))),
        store.putBatch(bad),
        store.putBatch(batchOf('pi-03', 1, readingsFrom(0, 2))),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(TelemetryStoreError);
      expect(await store.countReadings('pi-01')).toBe(2);
      expect(await store.countReadings('pi-02')).toBe(0);
      expect(await store.countReadings('pi-03')).toBe(2);
      await store.stop();
    });

    it('writes a full group at once instead of waiting for the turn to end', async () => {
      const file = path.join(dir, 'group-max', 'telemetry.db');
      const store = createSqliteTelemetryStore({ file, maxGroup: 2 });
      await store.start();
      const a = store.putBatch(batchOf('pi-01', 1, readingsFrom(0, 2)));
      expect(committed(file)).toBe(0);
      const b = store.putBatch(batchOf('pi-01', 2, readingsFrom(0, 2)));
      expect(committed(file)).toBe(4);
      const c = store.putBatch(batchOf('pi-01', 3, readingsFrom(0, 2)));
      expect(committed(file)).toBe(4);
      await Promise.all([a, b, c]);
      expect(committed(file)).toBe(6);
      await store.stop();
      expect(() => createSqliteTelemetryStore({ file, maxGroup: 0 })).toThrow(RangeError);
    });

    it('writes what was handed over before a stop', async () => {
      const file = path.join(dir, 'group-stop', 'telemetry.db');
      const store = createSqliteTelemetryStore({ file });
      await store.start();
      const put = store.putBatch(batchOf('pi-01', 1, readingsFrom(0, 5)));
      await store.stop();
      await expect(put).resolves.toEqual({ stored: 5, duplicate: false });
      expect(committed(file)).toBe(5);
    });
  });
});
