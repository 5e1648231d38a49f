import {
  createRng,
  decodeTelemetryBatch,
  LIMITS,
  type MetricValue,
  type Reading,
  TELEMETRY_V2,
  validateTelemetryBatchV2,
} from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { Batcher, type SealedBatch, sealBatch } from '../../src/core/batcher.js';

const bootId = '0f8fad5b-d9cb-469f-a165-70867728950e';

/**
 * Readings meant to find the corners of the size bound: several sensors, metric sets that change
 * for a sensor, booleans beside numbers, negative and long decimals, integers, a clock that steps
 * back (a new earliest reading moves t0) and times past 13 digits.
 */
function hostileReadings(seed: number, n: number): Reading[] {
  const rnd = createRng(seed);
  const out: Reading[] = [];
  let ts = 1_700_000_000_000;
  for (let i = 0; i < n; i++) {
    const r = rnd();
    ts += r < 0.05 ? -Math.floor(rnd() * 100_000) : Math.floor(rnd() * 3_000);
    if (r > 0.995) ts = 99_999_999_999_999 - Math.floor(rnd() * 1000);
    const sensor = ['env', 'door', 'soil.1', 'x:y-z_0'][Math.floor(rnd() * 4)] as string;
    const metrics: Record<string, MetricValue> = {};
    const count = 1 + Math.floor(rnd() * 4);
    for (let k = 0; k < count; k++) {
      const kind = rnd();
      const name = ['temperature', 'open', 'v', 'count', 'humidity'][Math.floor(rnd() * 5)] as string;
      metrics[name] =
        kind < 0.2 ? rnd() < 0.5 : kind < 0.5 ? -rnd() * 1e6 : kind < 0.8 ? Math.floor(rnd() * 1e9) : rnd() / 1e7;
    }
    out.push({ sensor, ts: Math.max(0, ts), metrics });
  }
  return out;
}

const make = (maxBytes: number, maxReadings = 10_000) =>
  new Batcher({ thingName: 'pi-01', bootId, limits: { maxReadings, maxBytes, maxAgeMs: 3_600_000 } });

function run(b: Batcher, readings: readonly Reading[]): SealedBatch[] {
  const sealed: SealedBatch[] = [];
  readings.forEach((r, i) => {
    sealed.push(...b.add(r, 1_000 + i));
  });
  const last = b.seal(1_000_000);
  if (last) sealed.push(last);
  return sealed;
}

const key = (r: Reading) => JSON.stringify([r.sensor, r.ts, Object.entries(r.metrics)]);

describe('Batcher, telemetry batch v2 (the default)', () => {
  it('publishes v2: per-sensor groups, times as offsets, peaks for the rules', () => {
    const b = make(64 * 1024, 3);
    b.add({ sensor: 'env', ts: 1_700_000_001_000, metrics: { temperature: 21.5, humidity: 40 } }, 1);
    b.add({ sensor: 'door', ts: 1_700_000_000_500, metrics: { open: true } }, 2);
    const [s] = b.add({ sensor: 'env', ts: 1_700_000_002_000, metrics: { temperature: 36.25, humidity: 39 } }, 3);
    expect(JSON.parse(s?.json ?? '')).toEqual({
      v: TELEMETRY_V2,
      thingName: 'pi-01',
      bootId,
      seq: 1,
      sealedAt: 3,
      t0: 1_700_000_000_500,
      sensors: [
        {
          sensor: 'env',
          dt: [500, 1500],
          metrics: { temperature: [21.5, 36.25], humidity: [40, 39] },
          peak: { temperature: 36.25, humidity: 40 },
        },
        { sensor: 'door', dt: [0], metrics: { open: [true] } },
      ],
    });
  });

  it.each([
    [1, 512],
    [2, 700],
    [3, 2048],
    [4, 16 * 1024],
    [5, 120 * 1024],
  ])(
    'seed %i, maxBytes %i: every batch within the limit, valid, and every reading in exactly one',
    (seed, maxBytes) => {
      const readings = hostileReadings(seed, 6_000);
      const sealed = run(make(maxBytes), readings);
      const seen: string[] = [];
      for (const s of sealed) {
        expect(Buffer.byteLength(s.json)).toBe(s.bytes);
        // A lone reading above maxBytes is sealed on its own; every other batch fits.
        if (s.readings > 1) expect(s.bytes).toBeLessThanOrEqual(maxBytes);
        const v2 = validateTelemetryBatchV2(JSON.parse(s.json));
        expect(v2.ok ? [] : v2.issues).toEqual([]);
        const decoded = decodeTelemetryBatch(s.json);
        if (!decoded.ok) throw new Error('sealed batch does not decode');
        expect(decoded.value.readings).toHaveLength(s.readings);
        for (const r of decoded.value.readings) seen.push(key(r));
      }
      expect(seen.sort()).toEqual(readings.map(key).sort());
      expect(sealed.map((s) => s.seq)).toEqual(sealed.map((_, i) => i + 1));
    },
  );

  it('fills a batch to within a few bytes of maxBytes (the bound barely overcounts)', () => {
    const readings: Reading[] = [];
    for (let i = 0; i < 20_000; i++) {
      const sensor = ['env', 'light', 'door', 'soil', 'air'][i % 5] as string;
      readings.push({
        sensor,
        ts: 1_767_225_600_000 + i * 200,
        metrics: { value: 20 + (i % 97) / 10, ok: i % 3 === 0 },
      });
    }
    for (const maxBytes of [1024, 8 * 1024, 120 * 1024]) {
      const sealed = run(make(maxBytes), readings);
      for (const s of sealed.slice(0, -1)) {
        expect(s.bytes).toBeLessThanOrEqual(maxBytes);
        // Less room left than one more reading (~18 bytes) plus the bound's spare commas (5 per group).
        expect(maxBytes - s.bytes).toBeLessThan(18 + 5 * 5 + 10);
      }
    }
  });

  it('a clock stepping back moves t0 and lengthens every offset: still within maxBytes', () => {
    const readings: Reading[] = [];
    let ts = 1_700_000_000_000;
    for (let i = 0; i < 3_000; i++) {
      // Every 40th reading comes 10^10 ms earlier than the rest: each open offset gains ~6 digits.
      ts = i % 40 === 39 ? ts - 10_000_000_000 : ts + 1_000;
      readings.push({ sensor: 'env', ts, metrics: { t: i % 10 } });
    }
    for (const maxBytes of [600, 4096]) {
      const sealed = run(make(maxBytes), readings);
      expect(sealed.length).toBeGreaterThan(3);
      for (const s of sealed) expect(s.bytes).toBeLessThanOrEqual(maxBytes);
    }
  });

  it('drops a reading whose group alone passes 128 KB, seals one above maxBytes on its own', () => {
    const b = make(512);
    b.add({ sensor: 'env', ts: 1, metrics: { t: 1 } }, 1);
    const big: Reading = { sensor: 'x', ts: 2, metrics: {} };
    for (let i = 0; i < 100; i++) (big.metrics as Record<string, number>)[`m${i}`] = i;
    const sealed = b.add(big, 2);
    expect(sealed.map((s) => s.readings)).toEqual([1, 1]);
    expect(sealed[1]?.bytes).toBeGreaterThan(512);
    const huge: Reading = { sensor: 'x', ts: 3, metrics: {} };
    // Names and peaks are written twice in v2: 4,000 metrics of ~20 bytes pass 128 KB.
    for (let i = 0; i < 4000; i++) (huge.metrics as Record<string, number>)[`metric_${i}_${'n'.repeat(8)}`] = i;
    expect(b.add(huge, 3)).toEqual([]);
    expect(b.oversizeDropped).toBe(1);
    expect(LIMITS.maxMessageBytes).toBe(131_072);
  });

  it('sealBatch under v1 and v2 carries the same readings, v2 in fewer bytes for a sensor that keeps its metrics', () => {
    const readings = hostileReadings(9, 50).map((r, i) => ({
      sensor: 'env',
      ts: r.ts,
      metrics: { temperature: 20 + (i % 13) / 10, humidity: 40 + (i % 7), open: i % 2 === 0 },
    }));
    const base = { thingName: 'pi-01', bootId, seq: 4, readings, now: 5 };
    const v1 = sealBatch({ ...base, encoding: 'v1' });
    const v2 = sealBatch({ ...base, encoding: 'v2' });
    expect(sealBatch(base)).toEqual(v1);
    const d1 = decodeTelemetryBatch(v1.json);
    const d2 = decodeTelemetryBatch(v2.json);
    if (!d1.ok || !d2.ok) throw new Error('does not decode');
    expect(d2.value.readings.map(key).sort()).toEqual(d1.value.readings.map(key).sort());
    expect({ ...d2.value, readings: [] }).toEqual({ ...d1.value, readings: [] });
    expect(v2.bytes).toBeLessThan(v1.bytes / 2);
  });

  it('sealBatch of readings whose metric sets all differ is still exact and valid (v2 may then be larger)', () => {
    const readings = hostileReadings(11, 300);
    const v2 = sealBatch({ thingName: 'pi-01', bootId, seq: 1, readings, now: 5, encoding: 'v2' });
    const decoded = decodeTelemetryBatch(v2.json);
    if (!decoded.ok) throw new Error(JSON.stringify(decoded.issues));
    expect(decoded.value.readings.map(key).sort()).toEqual(readings.map(key).sort());
  });
});
