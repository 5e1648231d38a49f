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
});
