import type { Reading, TelemetryBatch } from '@pifleet/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidPageTokenError, InvalidTelemetryQueryError, TelemetryStoreError } from '../core/telemetry/errors.js';
import type {
  ConnectivityListing,
  ConnectivityRecord,
  StoredReading,
  TelemetryQuery,
  TelemetryStore,
} from '../ports/telemetry-store.js';

/**
 * The behaviour every TelemetryStore adapter must show. Run it once per adapter:
 *
 *   describeTelemetryStore('sqlite', async () => ({ store, teardown }));
 *
 * The factory is called before every test and must return an empty, started store.
 * Import only from tests (it imports vitest).
 */
export interface TelemetryStoreHarness {
  readonly store: TelemetryStore;
  /** Stops the store and removes what it used. */
  teardown(): Promise<void>;
  /** Fault injection, for adapters that write a batch in several requests (DynamoDB). */
  readonly faults?: {
    /** The next chunked write stores only part of its items and reports the rest unprocessed, once. */
    partialWriteOnce(): void;
    /** The chunked write after the next one fails outright, once (the batch is left half written). */
    failSecondWriteOnce(): void;
    /** How many faults have fired so far. */
    fired(): number;
  };
}

const T0 = 1_700_000_000_000;
const BOOT = '3f0c2b1e-8a44-4c1e-9a51-0b1f9d6c2e77';

export function batchOf(
  thingName: string,
  seq: number,
  readings: Reading[],
  bootId = BOOT,
  sealedAt = T0 + 60_000,
): TelemetryBatch {
  return { v: 1, thingName, bootId, seq, sealedAt, readings };
}

/** `n` readings alternating between two sensors, one second apart from `start`. */
export function readingsFrom(start: number, n: number): Reading[] {
  return Array.from({ length: n }, (_, i) =>
    i % 2 === 0
      ? { sensor: 'bme280', ts: start + i * 1000, metrics: { temperature: 20 + i / 10, humidity: 40 } }
      : { sensor: 'door', ts: start + i * 1000, metrics: { open: i % 4 === 1 } },
  );
}

async function drain(store: TelemetryStore, q: Omit<TelemetryQuery, 'nextToken'>): Promise<StoredReading[][]> {
  const pages: StoredReading[][] = [];
  let token: string | undefined;
  for (let guard = 0; guard < 1000; guard++) {
    const page = await store.query(token === undefined ? q : { ...q, nextToken: token });
    pages.push([...page.items]);
    token = page.nextToken;
    if (token === undefined) return pages;
  }
  throw new Error('pagination did not end');
}

/** A presence record of `thingName` at `T0 + offset` ms. */
export function connectivityOf(thingName: string, connected: boolean, offset = 0): ConnectivityRecord {
  return connected
    ? { thingName, connected, clientId: thingName, timestamp: T0 + offset, eventType: 'connected', versionNumber: 1 }
    : {
        thingName,
        connected,
        clientId: thingName,
        timestamp: T0 + offset,
        eventType: 'disconnected',
        versionNumber: 1,
        disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
        clientInitiatedDisconnect: false,
      };
}

async function drainConnectivity(
  store: TelemetryStore,
  listing: Omit<ConnectivityListing, 'nextToken'>,
): Promise<ConnectivityRecord[][]> {
  const pages: ConnectivityRecord[][] = [];
  let token: string | undefined;
  for (let guard = 0; guard < 1000; guard++) {
    const page = await store.listConnectivity(token === undefined ? listing : { ...listing, nextToken: token });
    pages.push([...page.items]);
    token = page.nextToken;
    if (token === undefined) return pages;
  }
  throw new Error('pagination did not end');
}

const all = (thingName: string, extra: Partial<TelemetryQuery> = {}): TelemetryQuery => ({
  thingName,
  from: 0,
  to: T0 * 2,
  limit: 1000,
  ...extra,
});

export function describeTelemetryStore(name: string, factory: () => Promise<TelemetryStoreHarness>): void {
  describe(`TelemetryStore behaviour: ${name}`, () => {
    let h: TelemetryStoreHarness;
    let store: TelemetryStore;

    beforeEach(async () => {
      h = await factory();
      store = h.store;
    });
    afterEach(async () => {
      await h.teardown();
    });

    it('stores a batch and returns its readings in time order with their batch identity', async () => {
      const readings: Reading[] = [
        { sensor: 'bme280', ts: T0 + 2000, metrics: { temperature: 22 } },
        { sensor: 'bme280', ts: T0, metrics: { temperature: 20, humidity: 41.5 } },
        { sensor: 'door', ts: T0 + 1000, metrics: { open: true } },
      ];
      await expect(store.putBatch(batchOf('pi-01', 1, readings))).resolves.toEqual({ stored: 3, duplicate: false });
      const page = await store.query(all('pi-01'));
      expect(page.nextToken).toBeUndefined();
      expect(page.items).toEqual([
        {
          thingName: 'pi-01',
          sensor: 'bme280',
          ts: T0,
          metrics: { temperature: 20, humidity: 41.5 },
          bootId: BOOT,
          seq: 1,
          index: 1,
        },
        { thingName: 'pi-01', sensor: 'door', ts: T0 + 1000, metrics: { open: true }, bootId: BOOT, seq: 1, index: 2 },
        {
          thingName: 'pi-01',
          sensor: 'bme280',
          ts: T0 + 2000,
          metrics: { temperature: 22 },
          bootId: BOOT,
          seq: 1,
          index: 0,
        },
      ]);
    });

    it('stores nothing twice when a batch is resent, and says it was a duplicate', async () => {
      const batch = batchOf('pi-01', 7, readingsFrom(T0, 4));
      await expect(store.putBatch(batch)).resolves.toEqual({ stored: 4, duplicate: false });
      await expect(store.putBatch(batch)).resolves.toEqual({ stored: 0, duplicate: true });
      // A resend after a lost PUBACK carries the same identity, even if re-sealed later.
      await expect(store.putBatch({ ...batch, sealedAt: batch.sealedAt + 5000 })).resolves.toEqual({
        stored: 0,
        duplicate: true,
      });
      expect(await store.countReadings('pi-01')).toBe(4);
      expect((await store.query(all('pi-01'))).items).toHaveLength(4);
    });

    it.each([
      ['the next seq of the same boot', { seq: 8 }],
      ['the same seq of another boot', { bootId: '9a9a9a9a-0000-4000-8000-000000000000' }],
      ['the same seq and boot of another thing', { thingName: 'pi-02' }],
    ])('stores %s as a new batch', async (_label, change) => {
      const first = batchOf('pi-01', 7, readingsFrom(T0, 2));
      await store.putBatch(first);
      await expect(store.putBatch({ ...first, ...change })).resolves.toEqual({ stored: 2, duplicate: false });
      expect(await store.countReadings()).toBe(4);
    });

    it('orders readings from many batches by time, with a stable order for equal times', async () => {
      await store.putBatch(batchOf('pi-01', 2, [{ sensor: 'a', ts: T0 + 10, metrics: { x: 2 } }]));
      await store.putBatch(batchOf('pi-01', 1, [{ sensor: 'a', ts: T0 + 5, metrics: { x: 1 } }]));
      await store.putBatch(
        batchOf('pi-01', 3, [
          { sensor: 'b', ts: T0 + 10, metrics: { x: 3 } },
          { sensor: 'a', ts: T0 + 10, metrics: { x: 4 } },
        ]),
      );
      const items = (await store.query(all('pi-01'))).items;
      expect(items.map((r) => r.metrics.x)).toEqual([1, 2, 4, 3]);
      expect(items.map((r) => `${r.sensor}@${r.ts - T0}/${r.seq}.${r.index}`)).toEqual([
        'a@5/1.0',
        'a@10/2.0',
        'a@10/3.1',
        'b@10/3.0',
      ]);
    });

    it.each([
      ['the whole range', T0, T0 + 9000, 10],
      ['inclusive bounds on exact reading times', T0 + 2000, T0 + 4000, 3],
      ['a range inside one second', T0 + 2001, T0 + 2999, 0],
      ['a single instant', T0 + 5000, T0 + 5000, 1],
      ['a range before all data', 0, T0 - 1, 0],
      ['a range after all data', T0 + 9001, T0 * 2, 0],
    ])('returns only readings in the time range: %s', async (_label, from, to, expected) => {
      await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, 10)));
      const items = (await store.query({ thingName: 'pi-01', from, to, limit: 100 })).items;
      expect(items).toHaveLength(expected);
      for (const r of items) {
        expect(r.ts).toBeGreaterThanOrEqual(from);
        expect(r.ts).toBeLessThanOrEqual(to);
      }
    });

    it('keeps things apart', async () => {
      await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, 3)));
      await store.putBatch(batchOf('pi-010', 1, readingsFrom(T0, 5)));
      expect((await store.query(all('pi-01'))).items).toHaveLength(3);
      expect((await store.query(all('pi-010'))).items).toHaveLength(5);
      expect((await store.query(all('pi-99'))).items).toEqual([]);
      expect(await store.countReadings('pi-01')).toBe(3);
      expect(await store.countReadings('pi-010')).toBe(5);
      expect(await store.countReadings('pi-99')).toBe(0);
      expect(await store.countReadings()).toBe(8);
    });

    it('filters by sensor, by metric (returning only that metric), and by both', async () => {
      await store.putBatch(
        batchOf('pi-01', 1, [
          { sensor: 'bme280', ts: T0, metrics: { temperature: 20, humidity: 40 } },
          { sensor: 'door', ts: T0 + 1, metrics: { open: false } },
          { sensor: 'sht31', ts: T0 + 2, metrics: { temperature: 19.5 } },
          { sensor: 'bme280', ts: T0 + 3, metrics: { pressure: 1013 } },
          { sensor: 'door', ts: T0 + 4, metrics: { open: true } },
        ]),
      );
      const bySensor = (await store.query(all('pi-01', { sensor: 'bme280' }))).items;
      expect(bySensor.map((r) => r.metrics)).toEqual([{ temperature: 20, humidity: 40 }, { pressure: 1013 }]);

      const byMetric = (await store.query(all('pi-01', { metric: 'temperature' }))).items;
      expect(byMetric.map((r) => [r.sensor, r.metrics])).toEqual([
        ['bme280', { temperature: 20 }],
        ['sht31', { temperature: 19.5 }],
      ]);

      const both = (await store.query(all('pi-01', { sensor: 'door', metric: 'open' }))).items;
      expect(both.map((r) => r.metrics.open)).toEqual([false, true]);

      expect((await store.query(all('pi-01', { sensor: 'door', metric: 'temperature' }))).items).toEqual([]);
      expect((await store.query(all('pi-01', { sensor: 'nope' }))).items).toEqual([]);
    });

    it.each([
      ['no filter', {}, 23, [5, 5, 5, 5, 3]],
      ['a limit that divides the total', {}, 20, [5, 5, 5, 5]],
      ['a sensor filter', { sensor: 'door' }, 23, [5, 5, 1]],
      ['a metric filter', { metric: 'temperature' }, 23, [5, 5, 2]],
    ] as const)('pages with tokens that round-trip: %s', async (_label, filter, total, sizes) => {
      await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, total)));
      const q = all('pi-01', { ...filter, limit: 5 });
      const pages = await drain(store, q);
      expect(pages.map((p) => p.length)).toEqual(sizes);
      const whole = (await store.query({ ...q, limit: 1000 })).items;
      expect(pages.flat()).toEqual(whole);
    });

    it('rejects page tokens that belong to another query or are not tokens at all', async () => {
      await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, 6)));
      const first = await store.query({ thingName: 'pi-01', from: T0, to: T0 + 5000, limit: 2 });
      const token = first.nextToken;
      expect(token).toBeDefined();
      if (token === undefined) return;
      await expect(
        store.query({ thingName: 'pi-01', from: T0, to: T0 + 5000, limit: 2, nextToken: token }),
      ).resolves.toMatchObject({
        items: [{ ts: T0 + 2000 }, { ts: T0 + 3000 }],
      });
      await expect(
        store.query({ thingName: 'pi-02', from: T0, to: T0 + 5000, limit: 2, nextToken: token }),
      ).rejects.toBeInstanceOf(InvalidPageTokenError);
      await expect(
        store.query({ thingName: 'pi-01', from: T0 + 3000, to: T0 + 5000, limit: 2, nextToken: token }),
      ).rejects.toBeInstanceOf(InvalidPageTokenError);
      for (const bad of ['', 'not a token!', Buffer.from('{"v":1}').toString('base64url'), 'eyJ2Ijo']) {
        await expect(store.query({ ...all('pi-01'), nextToken: bad })).rejects.toBeInstanceOf(InvalidPageTokenError);
      }
    });

    it.each([
      ['limit 0', { limit: 0 }],
      ['limit over 1000', { limit: 1001 }],
      ['a fractional limit', { limit: 2.5 }],
      ['from after to', { from: T0 + 1, to: T0 }],
      ['a negative from', { from: -1 }],
    ])('rejects a query with %s', async (_label, change) => {
      await expect(store.query({ ...all('pi-01'), ...change })).rejects.toBeInstanceOf(InvalidTelemetryQueryError);
    });

    it('keeps the latest value of every metric, and a late old batch does not overwrite a newer value', async () => {
      expect(await store.latest('pi-01')).toEqual([]);
      await store.putBatch(
        batchOf('pi-01', 2, [
          { sensor: 'bme280', ts: T0 + 100, metrics: { temperature: 25, humidity: 50 } },
          { sensor: 'door', ts: T0 + 50, metrics: { open: true } },
          { sensor: 'bme280', ts: T0 + 200, metrics: { temperature: 26 } },
        ]),
      );
      await store.putBatch(
        batchOf('pi-01', 1, [
          { sensor: 'bme280', ts: T0, metrics: { temperature: 10, humidity: 10, pressure: 1000 } },
          { sensor: 'door', ts: T0 + 60, metrics: { open: false } },
        ]),
      );
      await store.putBatch(batchOf('pi-02', 1, [{ sensor: 'bme280', ts: T0 + 999, metrics: { temperature: -5 } }]));
      expect(await store.latest('pi-01')).toEqual([
        { sensor: 'bme280', metric: 'humidity', value: 50, ts: T0 + 100 },
        { sensor: 'bme280', metric: 'pressure', value: 1000, ts: T0 },
        { sensor: 'bme280', metric: 'temperature', value: 26, ts: T0 + 200 },
        { sensor: 'door', metric: 'open', value: false, ts: T0 + 60 },
      ]);
    });

    it('records connectivity and ignores presence events older than the one it holds', async () => {
      expect(await store.getConnectivity('pi-01')).toBeUndefined();
      const connected: ConnectivityRecord = {
        thingName: 'pi-01',
        connected: true,
        clientId: 'pi-01',
        timestamp: T0 + 1000,
        eventType: 'connected',
        versionNumber: 3,
        sessionIdentifier: 'a4666d2a7d844ae4ac5d7b38c9cb7967',
        principalIdentifier: 'abc',
        ipAddress: '127.0.0.1',
      };
      await expect(store.putConnectivity(connected)).resolves.toEqual({ applied: true });
      expect(await store.getConnectivity('pi-01')).toEqual(connected);

      const stale: ConnectivityRecord = {
        thingName: 'pi-01',
        connected: false,
        clientId: 'pi-01',
        timestamp: T0 + 500,
        eventType: 'disconnected',
        versionNumber: 2,
        disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
        clientInitiatedDisconnect: false,
      };
      await expect(store.putConnectivity(stale)).resolves.toEqual({ applied: false });
      expect(await store.getConnectivity('pi-01')).toEqual(connected);

      const sameTimeLowerVersion = { ...stale, timestamp: T0 + 1000, versionNumber: 2 };
      await expect(store.putConnectivity(sameTimeLowerVersion)).resolves.toEqual({ applied: false });

      const later = { ...stale, timestamp: T0 + 2000, versionNumber: 3 };
      await expect(store.putConnectivity(later)).resolves.toEqual({ applied: true });
      expect(await store.getConnectivity('pi-01')).toEqual(later);
      expect(await store.getConnectivity('pi-02')).toBeUndefined();
    });

    it('lists nothing for a fleet without presence events, even when things have readings', async () => {
      await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, 3)));
      await expect(store.listConnectivity({ limit: 10 })).resolves.toEqual({ items: [] });
    });

    it.each([
      ['pages of 3', 3, [3, 3, 1]],
      ['a limit that divides the fleet', 7, [7]],
      ['a page per thing', 1, [1, 1, 1, 1, 1, 1, 1]],
      ['one page larger than the fleet', 1000, [7]],
    ] as const)('lists every thing’s record in thing-name order: %s', async (_label, limit, sizes) => {
      // Inserted out of order, with names whose order differs from their numeric order.
      const names = ['pi-10', 'pi-2', 'gw:a', 'pi-01', 'pi-1', 'Pi-9', 'pi-010'];
      for (const [i, name] of names.entries()) await store.putConnectivity(connectivityOf(name, i % 2 === 0, i));
      const pages = await drainConnectivity(store, { limit });
      expect(pages.map((p) => p.length)).toEqual(sizes);
      const listed = pages.flat();
      // Byte order: upper case before lower, '0' before '1', a prefix before its extensions.
      expect(listed.map((r) => r.thingName)).toEqual(['Pi-9', 'gw:a', 'pi-01', 'pi-010', 'pi-1', 'pi-10', 'pi-2']);
      for (const record of listed) expect(record).toEqual(await store.getConnectivity(record.thingName));
    });

    it('lists the newest record of a thing, not every event it had', async () => {
      await store.putConnectivity(connectivityOf('pi-01', true, 0));
      await store.putConnectivity(connectivityOf('pi-01', false, 5000));
      await store.putConnectivity(connectivityOf('pi-01', true, 1000)); // late and stale: not applied
      await store.putConnectivity(connectivityOf('pi-02', true, 0));
      const { items } = await store.listConnectivity({ limit: 10 });
      expect(items).toEqual([connectivityOf('pi-01', false, 5000), connectivityOf('pi-02', true, 0)]);
    });

    it('a token continues after its thing, also when records change between pages', async () => {
      for (const name of ['pi-01', 'pi-03', 'pi-05']) await store.putConnectivity(connectivityOf(name, true));
      const first = await store.listConnectivity({ limit: 1 });
      expect(first.items.map((r) => r.thingName)).toEqual(['pi-01']);
      const token = first.nextToken;
      if (token === undefined) throw new Error('a first page of 1 of 3 has a token');
      // A thing added before the token's position is not seen; one after it is.
      await store.putConnectivity(connectivityOf('pi-00', true));
      await store.putConnectivity(connectivityOf('pi-02', true));
      const rest = await store.listConnectivity({ limit: 10, nextToken: token });
      expect(rest.items.map((r) => r.thingName)).toEqual(['pi-02', 'pi-03', 'pi-05']);
    });

    it('rejects listing tokens it did not issue, query tokens included', async () => {
      await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, 4)));
      const queryToken = (await store.query({ ...all('pi-01'), limit: 1 })).nextToken;
      expect(queryToken).toBeDefined();
      const raw = (json: string) => Buffer.from(json).toString('base64url');
      const forged = (body: unknown) => raw(JSON.stringify(body));
      for (const bad of [
        '',
        'not a token!',
        'eyJ2Ijo',
        queryToken ?? 'missing',
        forged({ v: 1 }),
        forged({ v: 2, c: 'pi-01' }),
        forged({ v: 1, c: '' }),
        forged({ v: 1, c: 'pi 01' }),
        forged({ v: 1, c: 'x'.repeat(129) }),
        forged({ v: 1, c: ['pi-01'] }),
        // JSON.parse makes `__proto__` an own key: the body behind it must not be read as the token.
        raw('{"__proto__":{"v":1,"c":"pi-01"}}'),
        forged(null),
        'A'.repeat(4096),
      ]) {
        await expect(store.listConnectivity({ limit: 10, nextToken: bad })).rejects.toBeInstanceOf(
          InvalidPageTokenError,
        );
      }
    });

    it.each([
      ['limit 0', 0],
      ['limit over 1000', 1001],
      ['a fractional limit', 2.5],
      ['a NaN limit', Number.NaN],
    ])('rejects a listing with %s', async (_label, limit) => {
      await expect(store.listConnectivity({ limit })).rejects.toBeInstanceOf(InvalidTelemetryQueryError);
    });

    it('stores a batch larger than one write request completely', async () => {
      h.faults?.partialWriteOnce();
      const batch = batchOf('pi-01', 1, readingsFrom(T0, 260));
      await expect(store.putBatch(batch)).resolves.toEqual({ stored: 260, duplicate: false });
      expect(await store.countReadings('pi-01')).toBe(260);
      const items = (await drain(store, { ...all('pi-01'), limit: 100 })).flat();
      expect(items.map((r) => r.index)).toEqual(Array.from({ length: 260 }, (_, i) => i));
      if (h.faults) expect(h.faults.fired()).toBe(1);
    });

    it('completes a batch whose first attempt failed half way, without duplicates', async () => {
      const batch = batchOf('pi-01', 1, readingsFrom(T0, 120));
      if (h.faults) {
        h.faults.failSecondWriteOnce();
        await expect(store.putBatch(batch)).rejects.toBeInstanceOf(TelemetryStoreError);
        expect(h.faults.fired()).toBe(1);
        await expect(store.putBatch(batch)).resolves.toEqual({ stored: 120, duplicate: false });
      } else {
        await expect(store.putBatch(batch)).resolves.toEqual({ stored: 120, duplicate: false });
      }
      await expect(store.putBatch(batch)).resolves.toEqual({ stored: 0, duplicate: true });
      expect(await store.countReadings()).toBe(120);
    });
  });
}
