import { createRng, type Reading } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { MIN_SHAPE_TABLE, ReadingRing } from '../../src/console/reading-ring.js';

const reading = (ts: number, metrics: Record<string, number | boolean>, sensor = 'bme280'): Reading => ({
  sensor,
  ts,
  metrics,
});

/** Readings of 1–5 metrics from three sensors, numbers (with fractions, negatives, huge) and booleans. */
function readings(rand: () => number, count: number, from = 1_700_000_000_000): Reading[] {
  const out: Reading[] = [];
  let ts = from;
  for (let i = 0; i < count; i++) {
    ts += Math.floor(rand() * 3) * 500;
    const sensor = ['bme280', 'door', 'ads1115'][Math.floor(rand() * 3)] as string;
    const metrics: Record<string, number | boolean> = {};
    const n = 1 + Math.floor(rand() * 5);
    for (let m = 0; m < n; m++) {
      const kind = rand();
      metrics[`m${Math.floor(rand() * 8)}`] =
        kind < 0.2 ? rand() < 0.5 : kind < 0.3 ? Number.MAX_SAFE_INTEGER * (rand() - 0.5) : (rand() - 0.5) * 1e3;
    }
    out.push(reading(ts, metrics, sensor));
  }
  return out;
}

/** What the console kept before the ring: every reading as an object, the newest `maxReadings` with at most `maxValues` values. */
function kept(all: readonly Reading[], maxReadings: number, maxValues: number): Reading[] {
  const out: Reading[] = [];
  let values = 0;
  for (let i = all.length - 1; i >= 0 && out.length < maxReadings; i--) {
    const r = all[i] as Reading;
    const k = Object.keys(r.metrics).length;
    if (k > maxValues) continue;
    if (values + k > maxValues) break;
    values += k;
    out.unshift(r);
  }
  return out;
}

describe('ReadingRing', () => {
  it('gives back exactly the readings it was given, key order and booleans included', () => {
    const ring = new ReadingRing({ maxReadings: 300, maxValues: 2_400 });
    const input = readings(createRng(1), 250);
    ring.append(input);
    expect(ring.size).toBe(250);
    // JSON text equality: same values, same key order (what the console's stream sends).
    expect(JSON.stringify(ring.readings())).toBe(JSON.stringify(input));
    expect(ring.lastTs).toBe(input[input.length - 1]?.ts);
  });

  it.each([
    [1, 1_000],
    [5, 12],
    [40, 100],
    [300, 2_400],
  ])(
    'keeps at most %i readings and %i values, the newest, through growth and wrap-around',
    (maxReadings, maxValues) => {
      const ring = new ReadingRing({ maxReadings, maxValues });
      const all: Reading[] = [];
      const rand = createRng(maxReadings * 7 + maxValues);
      for (let round = 0; round < 20; round++) {
        const batch = readings(rand, 1 + Math.floor(rand() * 40), (all[all.length - 1]?.ts ?? 1_000) + 1);
        ring.append(batch);
        all.push(...batch);
        const expected = kept(all, maxReadings, maxValues);
        expect(JSON.stringify(ring.readings())).toBe(JSON.stringify(expected));
        expect(ring.size).toBeLessThanOrEqual(maxReadings);
        // Allocated arrays never pass the bounds: 10 bytes a reading, 8 a value.
        expect(ring.arrayBytes).toBeLessThanOrEqual(maxReadings * 10 + maxValues * 8);
      }
    },
  );

  it('grows its value ring after the oldest readings were dropped (values wrapped around)', () => {
    const ring = new ReadingRing({ maxReadings: 20, maxValues: 200 });
    const all: Reading[] = [];
    for (let i = 0; i < 100; i++) all.push(reading(i, { a: i }));
    // Then wider readings: the values need more room than the first allocation, while the kept
    // ones start mid-array.
    for (let i = 100; i < 130; i++) all.push(reading(i, { a: i, b: -i, c: i / 3, d: i % 2 === 0, e: 1e9 + i }));
    for (const r of all) ring.append([r]);
    expect(JSON.stringify(ring.readings())).toBe(JSON.stringify(all.slice(-20)));
    const dropped = new ReadingRing({ maxReadings: 50, maxValues: 400 });
    dropped.append(all.slice(0, 60));
    dropped.dropBefore(40);
    dropped.append(all.slice(100, 130));
    expect(JSON.stringify(dropped.readings())).toBe(
      JSON.stringify(kept([...all.slice(40, 60), ...all.slice(100, 130)], 50, 400)),
    );
  });

  it('does not keep a reading with more metrics than it may hold, and keeps the others', () => {
    const ring = new ReadingRing({ maxReadings: 10, maxValues: 4 });
    const big = reading(2, { a: 1, b: 2, c: 3, d: 4, e: 5 });
    expect(ring.shapeOf(big)).toBeUndefined();
    ring.append([reading(1, { a: 1 }), big, reading(3, { a: 3, b: true })]);
    expect(ring.readings()).toEqual([reading(1, { a: 1 }), reading(3, { a: 3, b: true })]);
  });

  it('merges a late batch in time order, as the console did with a resent batch (kept readings first on equal times)', () => {
    const ring = new ReadingRing({ maxReadings: 5, maxValues: 100 });
    ring.append([reading(10, { t: 1 }), reading(20, { t: 2 }), reading(30, { t: 3 })]);
    ring.merge([reading(5, { t: 0 }), reading(20, { t: 9 }), reading(25, { h: 1 }, 'door')]);
    expect(ring.readings()).toEqual([
      reading(10, { t: 1 }),
      reading(20, { t: 2 }),
      reading(20, { t: 9 }),
      reading(25, { h: 1 }, 'door'),
      reading(30, { t: 3 }),
    ]);
    ring.merge([]);
    expect(ring.size).toBe(5);
  });

  it('drops readings older than a cutoff, and only those', () => {
    const ring = new ReadingRing({ maxReadings: 100, maxValues: 100 });
    ring.append([reading(1, { a: 1 }), reading(2, { a: 2 }), reading(2, { a: 3 }), reading(3, { a: 4 })]);
    ring.dropBefore(2);
    expect(ring.readings().map((r) => r.metrics.a)).toEqual([2, 3, 4]);
    ring.dropBefore(10);
    expect(ring.size).toBe(0);
    expect(ring.lastTs).toBeUndefined();
    ring.append([reading(11, { a: 5 })]);
    expect(ring.readings()).toEqual([reading(11, { a: 5 })]);
  });

  it('keeps its shape table bounded when every reading has a new shape, and still reads back right', () => {
    const ring = new ReadingRing({ maxReadings: 20, maxValues: 100 });
    const all: Reading[] = [];
    for (let i = 0; i < 2_000; i++) {
      const r = reading(i, { [`metric${i}`]: i, ok: i % 2 === 0 }, `s${i % 3}`);
      all.push(r);
      ring.append([r]);
      expect(ring.shapeCount).toBeLessThanOrEqual(Math.max(MIN_SHAPE_TABLE, 2 * 20) + 1);
    }
    expect(JSON.stringify(ring.readings())).toBe(JSON.stringify(all.slice(-20)));
  });

  it('keeps the names in its shape table bounded when every wide reading has new names', () => {
    const ring = new ReadingRing({ maxReadings: 300, maxValues: 100 });
    let last: Reading | undefined;
    for (let i = 0; i < 500; i++) {
      last = reading(i, Object.fromEntries(Array.from({ length: 90 }, (_, m) => [`r${i}m${m}`, m])));
      ring.append([last]);
      expect(ring.shapeNameCount).toBeLessThanOrEqual(3 * 100);
    }
    expect(ring.readings()).toEqual([last]);
  });

  it('tells a boolean metric from a number of the same name (a shape per kind)', () => {
    const ring = new ReadingRing({ maxReadings: 10, maxValues: 10 });
    ring.append([reading(1, { x: 1 }), reading(2, { x: true }), reading(3, { x: 0 }), reading(4, { x: false })]);
    expect(ring.readings().map((r) => r.metrics.x)).toEqual([1, true, 0, false]);
  });

  it('keeps the exact float64 of every number (no float32, no rounding)', () => {
    const values = [0.1, -0, 1e-300, 1.7976931348623157e308, 5e-324, 123456789.12345679, -273.15, 0.30000000000000004];
    const ring = new ReadingRing({ maxReadings: 10, maxValues: 10 });
    ring.append(values.map((v, i) => reading(i, { v })));
    expect(ring.readings().map((r) => r.metrics.v)).toEqual(values);
    expect(Object.is(ring.readings()[1]?.metrics.v, -0)).toBe(true);
  });

  it.each([
    ['a 10-minute window', [1_700_000_000_000, 1_700_000_000_500, 1_700_000_600_000]],
    ['times just inside 2^31 ms of each other', [1_000, 1_000 + 2 ** 31 - 1, 1_000 + 2 ** 31 - 2]],
    ['times further apart than 2^31 ms (32-bit offsets give up)', [0, 2 ** 31, 2 ** 31 + 1, 2 ** 40]],
    ['the largest times the protocol allows', [Number.MAX_SAFE_INTEGER - 5, Number.MAX_SAFE_INTEGER]],
    ['0 beside the largest', [0, Number.MAX_SAFE_INTEGER]],
  ])('gives back reading times exactly: %s', (_name, times) => {
    const ring = new ReadingRing({ maxReadings: 10, maxValues: 100 });
    const input = [...times].sort((a, b) => a - b).map((ts) => reading(ts, { v: ts % 7 }));
    for (const r of input) ring.append([r]);
    expect(ring.readings()).toEqual(input);
    expect(ring.lastTs).toBe(input[input.length - 1]?.ts);
  });

  it('keeps times exact as a device runs for months (the base moves with the kept readings)', () => {
    const ring = new ReadingRing({ maxReadings: 3, maxValues: 100 });
    const day = 86_400_000;
    const all: Reading[] = [];
    for (let i = 0; i < 200; i++) {
      const r = reading(1_700_000_000_000 + i * day, { d: i });
      all.push(r);
      ring.append([r]);
      expect(ring.readings()).toEqual(all.slice(-3));
    }
    // 32-bit offsets all along: 3 readings span 2 days.
    expect(ring.arrayBytes).toBeLessThanOrEqual(3 * 6 + 64 * 8);
  });

  it('merges a late reading from long before the kept ones (times exact)', () => {
    const ring = new ReadingRing({ maxReadings: 10, maxValues: 100 });
    ring.append([reading(1_700_000_000_000, { a: 1 })]);
    ring.merge([reading(5, { a: 0 })]);
    expect(ring.readings()).toEqual([reading(5, { a: 0 }), reading(1_700_000_000_000, { a: 1 })]);
    ring.dropBefore(6);
    ring.append([reading(1_700_000_000_001, { a: 2 })]);
    expect(ring.readings().map((r) => r.ts)).toEqual([1_700_000_000_000, 1_700_000_000_001]);
  });

  it.each([
    [{ maxReadings: 0, maxValues: 1 }],
    [{ maxReadings: 1, maxValues: 0 }],
    [{ maxReadings: 1.5, maxValues: 1 }],
    [{ maxReadings: 1, maxValues: Number.NaN }],
  ])('refuses limits that are not positive integers: %j', (limits) => {
    expect(() => new ReadingRing(limits)).toThrow(RangeError);
  });
});
