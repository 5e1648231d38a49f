import { describe, expect, it } from 'vitest';
import {
  batchMarkerKey,
  latestValuesOf,
  projectMetric,
  readingKeyRange,
  readingSortKey,
} from '../../../src/core/telemetry/keys.js';
import { decodePageToken, encodePageToken } from '../../../src/core/telemetry/page-token.js';
import { parseTelemetryQuery } from '../../../src/core/telemetry/query-api.js';
import { batchOf } from '../../../src/testing/telemetry-store-suite.js';

describe('reading sort keys', () => {
  it('sort in time order even when the times have different numbers of digits', () => {
    const keys = [1_000_000_000_000, 999, 10, 1_700_000_000_000, 0].map((ts) => readingSortKey(ts, 's', 'boot', 1, 0));
    expect([...keys].sort()).toEqual(
      [0, 10, 999, 1_000_000_000_000, 1_700_000_000_000].map((ts) => readingSortKey(ts, 's', 'boot', 1, 0)),
    );
  });

  it('order equal times by sensor, then boot, seq and index, with a shorter sensor id first', () => {
    const keys = [
      readingSortKey(5, 'a.b', 'x', 1, 0),
      readingSortKey(5, 'a', 'x', 2, 0),
      readingSortKey(5, 'a', 'x', 10, 0),
      readingSortKey(5, 'a', 'x', 2, 1),
    ];
    expect([...keys].sort()).toEqual([keys[1], keys[3], keys[2], keys[0]]);
  });

  it('stay distinct when a boot id contains the separator', () => {
    expect(readingSortKey(1, 's', 'a#1', 2, 3)).not.toBe(readingSortKey(1, 's', 'a', 12, 3));
  });

  it.each([
    [100, 200, 100, 's', true],
    [100, 200, 200, 'zzzz', true],
    [100, 200, 200, 'Z-._:', true],
    [100, 200, 99, 'zzzz', false],
    [100, 200, 201, 'a', false],
  ])('range [%i, %i] holds ts %i of sensor %s: %s', (from, to, ts, sensor, inside) => {
    const { lower, upper } = readingKeyRange(from, to);
    const k = readingSortKey(ts, sensor, 'boot', 1, 0);
    expect(k >= lower && k <= upper).toBe(inside);
  });

  it('mark batches by boot and seq', () => {
    expect(batchMarkerKey('b', 7)).toBe('B#b#0000000000000007');
  });
});

describe('latest values of a batch', () => {
  it('keeps the newest value per sensor and metric, the later reading winning a tie', () => {
    const batch = batchOf('pi-01', 1, [
      { sensor: 's', ts: 5, metrics: { t: 1, h: 1 } },
      { sensor: 's', ts: 9, metrics: { t: 2 } },
      { sensor: 's', ts: 9, metrics: { t: 3 } },
      { sensor: 'a', ts: 1, metrics: { on: true } },
    ]);
    expect(latestValuesOf(batch)).toEqual([
      { sensor: 'a', metric: 'on', value: true, ts: 1 },
      { sensor: 's', metric: 'h', value: 1, ts: 5 },
      { sensor: 's', metric: 't', value: 3, ts: 9 },
    ]);
  });

  it('projects a reading onto one metric, or drops it', () => {
    const r = { thingName: 't', sensor: 's', ts: 1, metrics: { a: 1, b: false }, bootId: 'x', seq: 1, index: 0 };
    expect(projectMetric(r, 'b')?.metrics).toEqual({ b: false });
    expect(projectMetric(r, 'c')).toBeUndefined();
    expect(projectMetric(r, 'toString')).toBeUndefined();
    expect(projectMetric(r, undefined)).toBe(r);
  });
});

describe('page tokens', () => {
  const q = { thingName: 'pi-01', from: 100, to: 200 };
  const key = readingSortKey(150, 's', 'b', 1, 0);

  it('round-trip for the same query', () => {
    expect(decodePageToken(encodePageToken('pi-01', key), q)).toEqual({ ok: true, afterKey: key });
  });

  it.each([
    ['another thing', encodePageToken('pi-02', key), q],
    ['a range the key is outside', encodePageToken('pi-01', key), { ...q, from: 160 }],
    ['a key that is not a reading key', encodePageToken('pi-01', 'B#b#1'), q],
    ['base64 of something else', Buffer.from('[1,2]').toString('base64url'), q],
    ['characters outside base64url', 'abc+/=', q],
    ['an empty token', '', q],
  ])('reject %s', (_label, token, query) => {
    expect(decodePageToken(token, query).ok).toBe(false);
  });
});

describe('telemetry query parameters', () => {
  it('applies the defaults', () => {
    expect(parseTelemetryQuery('pi-01', {}, 100_000_000)).toEqual({
      ok: true,
      value: { thingName: 'pi-01', from: 100_000_000 - 86_400_000, to: 100_000_000, limit: 100 },
    });
  });

  it('never starts before the epoch', () => {
    const r = parseTelemetryQuery('pi-01', { to: '1000' }, 5);
    expect(r.ok && r.value.from).toBe(0);
  });

  it.each([
    ['2024-05-01T12:00:00Z', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01T12:00:00.250+02:00', Date.UTC(2024, 4, 1, 10, 0, 0, 250)],
    ['2024-05-01', Date.UTC(2024, 4, 1)],
    ['1714564800000', 1_714_564_800_000],
  ])('reads the time %s', (raw, expected) => {
    const r = parseTelemetryQuery('pi-01', { from: raw, to: '9999999999999' }, 0);
    expect(r.ok && r.value.from).toBe(expected);
  });

  it.each(['2024-05-01T12:00:00', 'May 1 2024', '1e12', '', ' 1', '99999999999999999'])(
    'rejects the time %j',
    (raw) => {
      const r = parseTelemetryQuery('pi-01', { to: raw }, 0);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.issues.map((i) => i.path)).toEqual(['query.to']);
    },
  );
});
