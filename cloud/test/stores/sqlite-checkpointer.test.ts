import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { startCheckpointer } from '../../src/adapters/sqlite-checkpointer.js';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'checkpointer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const waitUntil = async (ok: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return ok();
};

describe('WAL checkpoints on a worker thread', () => {
  it('copies committed pages into the database file while the writer never checkpoints', async () => {
    const file = path.join(dir, 'a.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const before = statSync(file).size;
    for (let i = 0; i < 2_000; i++) insert.run('x'.repeat(200));
    // Nothing has copied the pages yet: they are all in the WAL.
    expect(statSync(file).size).toBe(before);
    const c = startCheckpointer(file, 50);
    expect(await waitUntil(() => statSync(file).size > before + 200 * 1_000, 5_000)).toBe(true);
    await c.stop();
    expect(c.lastError).toBeUndefined();
    expect(db.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 2_000 });
    db.close();
  });

  it('reports a checkpoint that fails instead of throwing into the writer', async () => {
    const c = startCheckpointer(path.join(dir, 'missing.db'), 50);
    expect(await waitUntil(() => c.lastError !== undefined, 5_000)).toBe(true);
    expect(c.lastError).toMatch(/unable to open|does not exist|directory/i);
    await c.stop();
  });

  it('the telemetry store keeps every batch across stop and reopen with checkpoints off its thread', async () => {
    const file = path.join(dir, 'telemetry.db');
    const store = createSqliteTelemetryStore({ file });
    await store.start();
    for (let seq = 1; seq <= 300; seq++) {
      await store.putBatch({
        v: 1,
        thingName: 'pi-1',
        bootId: 'boot-1',
        seq,
        sealedAt: 1_700_000_000_000 + seq,
        readings: [{ sensor: 'env', ts: 1_700_000_000_000 + seq, metrics: { temperature: seq } }],
      });
    }
    await store.stop();
    const again = createSqliteTelemetryStore({ file });
    await again.start();
    expect(await again.countReadings('pi-1')).toBe(300);
    await again.stop();
  });
});
