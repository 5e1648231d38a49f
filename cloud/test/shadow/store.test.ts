import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { shadowTopics } from '@pifleet/protocol';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { StoredShadow } from '../../src/core/shadow/document.js';
import { openSqliteShadowStore } from '../../src/shadow/sqlite-store.js';
import { createMemoryShadowStore, type ShadowStore } from '../../src/shadow/store.js';
import { createHarness } from './harness.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-shadow-store-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const dbPath = () => path.join(dir, `store-${n++}.db`);

const record = (over: Partial<StoredShadow> = {}): StoredShadow => ({
  thingName: 'pi-1',
  shadowName: undefined,
  version: 3,
  exists: true,
  state: { desired: { a: 1 }, reported: { b: [1, 2] } },
  metadata: { desired: { a: { timestamp: 10 } }, reported: { b: [{ timestamp: 11 }, { timestamp: 11 }] } },
  ...over,
});

/** The ShadowStore contract, run against every adapter. */
describe.each([
  { name: 'memory', open: (): ShadowStore => createMemoryShadowStore() },
  { name: 'SQLite', open: (): ShadowStore => openSqliteShadowStore({ path: dbPath() }) },
])('ShadowStore contract: $name', ({ open }) => {
  it('returns undefined for a shadow never saved', async () => {
    const store = open();
    expect(await store.load('pi-1', undefined)).toBeUndefined();
    expect(await store.load('pi-1', 'cfg')).toBeUndefined();
    await store.close();
  });

  it('round-trips a record and keeps classic and named shadows apart', async () => {
    const store = open();
    await store.save(record());
    await store.save(record({ shadowName: 'cfg', version: 7, state: { reported: { x: 'y' } }, metadata: {} }));
    expect(await store.load('pi-1', undefined)).toEqual(record());
    expect(await store.load('pi-1', 'cfg')).toEqual(
      record({ shadowName: 'cfg', version: 7, state: { reported: { x: 'y' } }, metadata: {} }),
    );
    expect(await store.load('pi-2', undefined)).toBeUndefined();
    await store.close();
  });

  it('overwrites a record and keeps a deleted one with its version', async () => {
    const store = open();
    await store.save(record());
    await store.save(record({ exists: false, state: {}, metadata: {}, version: 4 }));
    expect(await store.load('pi-1', undefined)).toEqual(record({ exists: false, state: {}, metadata: {}, version: 4 }));
    await store.close();
  });

  it('lists existing named shadows of one thing in order, after a cursor, up to a limit', async () => {
    const store = open();
    await store.save(record());
    for (const name of ['b', 'a', 'd', 'c']) await store.save(record({ shadowName: name }));
    await store.save(record({ shadowName: 'c', exists: false }));
    await store.save(record({ thingName: 'pi-2', shadowName: 'a0' }));
    expect(await store.listNamed('pi-1', { limit: 10 })).toEqual(['a', 'b', 'd']);
    expect(await store.listNamed('pi-1', { limit: 2 })).toEqual(['a', 'b']);
    expect(await store.listNamed('pi-1', { after: 'b', limit: 10 })).toEqual(['d']);
    expect(await store.listNamed('pi-3', { limit: 10 })).toEqual([]);
    await store.close();
  });

  it('hands out copies: changing a loaded record does not change the store', async () => {
    const store = open();
    await store.save(record());
    const loaded = await store.load('pi-1', undefined);
    (loaded?.state.desired as { a: number }).a = 99;
    expect((await store.load('pi-1', undefined))?.state.desired).toEqual({ a: 1 });
    await store.close();
  });
});

describe('SQLite shadow store persistence', () => {
  const enc = new TextEncoder();

  it('keeps shadows, versions and deletions across a close and reopen of the database', async () => {
    const file = dbPath();
    const topics = shadowTopics('pi-7');
    let store = openSqliteShadowStore({ path: file });
    let h = createHarness({ store, startMs: 1_000_000 });
    await h.service.updateShadow(
      'pi-7',
      undefined,
      enc.encode('{"state":{"desired":{"led":true},"reported":{"led":false}}}'),
    );
    await h.service.updateShadow('pi-7', 'cfg', enc.encode('{"state":{"reported":{"rate":5}}}'));
    await h.service.updateShadow('pi-7', 'old', enc.encode('{"state":{"reported":{"x":1}}}'));
    await h.service.updateShadow('pi-7', 'old', enc.encode('{"state":{"reported":{"x":2}}}'));
    await h.service.deleteShadow('pi-7', 'old');
    await h.service.stop();
    await store.close();

    store = openSqliteShadowStore({ path: file });
    h = createHarness({ store, startMs: 2_000_000 });
    expect(await h.service.getShadow('pi-7')).toEqual({
      status: 200,
      body: {
        state: { desired: { led: true }, reported: { led: false }, delta: { led: true } },
        metadata: {
          desired: { led: { timestamp: 1_000 } },
          reported: { led: { timestamp: 1_000 } },
          delta: { led: { timestamp: 1_000 } },
        },
        version: 1,
        timestamp: 2_000,
      },
    });
    expect((await h.service.listNamedShadows('pi-7')).body.results).toEqual(['cfg']);
    expect((await h.service.getShadow('pi-7', 'old')).status).toBe(404);
    // The deleted shadow's version counter survived the restart.
    const recreated = await h.service.updateShadow('pi-7', 'old', enc.encode('{"state":{"reported":{"x":3}}}'));
    expect(recreated.body.version).toBe(3);
    const named = await h.service.updateShadow(
      'pi-7',
      'cfg',
      enc.encode('{"state":{"reported":{"rate":6}},"version":1}'),
    );
    expect(named.body.version).toBe(2);
    expect(h.published.some((m) => m.topic === topics.updateAccepted)).toBe(false);
    await store.close();
  });

  it('is durable as soon as an update is accepted: a second connection sees it without a close', async () => {
    const file = dbPath();
    const store = openSqliteShadowStore({ path: file, synchronous: 'NORMAL' });
    const h = createHarness({ store });
    await h.service.updateShadow('pi-8', undefined, enc.encode('{"state":{"reported":{"t":21.5}}}'));
    const other = new Database(file, { readonly: true });
    try {
      const row = other
        .prepare('SELECT version, deleted, document FROM shadows WHERE thing_name = ? AND shadow_name = ?')
        .get('pi-8', '') as { version: number; deleted: number; document: string };
      expect(row.version).toBe(1);
      expect(row.deleted).toBe(0);
      expect(JSON.parse(row.document).state).toEqual({ reported: { t: 21.5 } });
    } finally {
      other.close();
      await store.close();
    }
  });

  it('reports a corrupt row as a ShadowStoreError, which the service answers with 500', async () => {
    const file = dbPath();
    const store = openSqliteShadowStore({ path: file });
    await store.save(record({ thingName: 'pi-9' }));
    const raw = new Database(file);
    raw.prepare('UPDATE shadows SET document = ? WHERE thing_name = ?').run('{broken', 'pi-9');
    raw.close();
    await expect(store.load('pi-9', undefined)).rejects.toMatchObject({
      name: 'ShadowStoreError',
      code: 'SHADOW_STORE_CORRUPT',
    });
    const h = createHarness({ store });
    expect(await h.service.getShadow('pi-9')).toMatchObject({ status: 500, errorType: 'InternalFailureException' });
    await store.close();
  });
});
