import { decodeTelemetryBatch, LIMITS, type Reading } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { Batcher, type BatchLimits, sealBatch, type TelemetryEncoding } from '../../src/core/batcher.js';

const bootId = '0f8fad5b-d9cb-469f-a165-70867728950e';
const reading = (i: number, extra = ''): Reading => ({
  sensor: 'bme280',
  ts: 1_700_000_000_000 + i,
  metrics: { temperature: 21.5 + i / 100, humidity: 40.25, ...(extra ? { [extra]: 1 } : {}) },
});

// Both encodings keep every promise below; v2 is the default, v1 what `telemetry.encoding: v1` selects.
describe.each<TelemetryEncoding>(['v2', 'v1'])('Batcher (%s)', (encoding) => {
  const make = (limits: Partial<BatchLimits>) =>
    new Batcher({
      thingName: 'pi-01',
      bootId,
      encoding,
      limits: { maxReadings: 1000, maxBytes: 120 * 1024, maxAgeMs: 10_000, ...limits },
    });

  it('after add, the reading is in the open batch (nextSeq) exactly when readings are pending', () => {
    const b = make({ maxReadings: 3, maxBytes: 400 });
    const big = (i: number) => reading(i, `x${'y'.repeat(60)}`);
    let sealedSeqs: number[] = [];
    for (let i = 0; i < 40; i++) {
      const r = i % 7 === 3 ? big(i) : reading(i);
      const sealed = b.add(r, 1000 + i);
      sealedSeqs = sealedSeqs.concat(sealed.map((s) => s.seq));
      const last = sealed.at(-1);
      const decoded = last ? decodeTelemetryBatch(last.json) : undefined;
      const inLast = decoded?.ok === true && decoded.value.readings.some((x) => x.ts === r.ts);
      // Pending: it is the open batch's newest reading; otherwise the last sealed batch holds it.
      expect(inLast).toBe(b.pending === 0);
    }
    expect(sealedSeqs.length).toBeGreaterThan(5);
  });

  it('sealBatch encodes readings under a given identity, as seal does', () => {
    const b = make({});
    b.add(reading(1), 10);
    b.add(reading(2), 11);
    const sealed = b.seal(12);
    const again = sealBatch({
      thingName: 'pi-01',
      bootId,
      seq: 1,
      readings: [reading(1), reading(2)],
      now: 12,
      encoding,
    });
    expect(again).toEqual(sealed);
  });

  it.each([1, 2, 7, 100])('seals exactly at maxReadings=%i', (maxReadings) => {
    const b = make({ maxReadings });
    const sealed = [];
    for (let i = 0; i < maxReadings * 3; i++) sealed.push(...b.add(reading(i), 1000 + i));
    expect(sealed).toHaveLength(3);
    expect(sealed.map((s) => s.readings)).toEqual([maxReadings, maxReadings, maxReadings]);
    expect(sealed.map((s) => s.seq)).toEqual([1, 2, 3]);
    expect(b.pending).toBe(0);
  });

  it.each([512, 1000, 4096, 120 * 1024])('never exceeds maxBytes=%i, and fills close to it', (maxBytes) => {
    const b = make({ maxBytes, maxReadings: 10_000 });
    const sealed = [];
    // v2 needs about a third of v1's bytes per reading: enough readings to fill 120 KB in both.
    for (let i = 0; i < 12_000; i++) sealed.push(...b.add(reading(i), 5_000 + i));
    const last = b.seal(9_999);
    if (last) sealed.push(last);
    expect(sealed.length).toBeGreaterThan(1);
    for (const s of sealed.slice(0, -1)) {
      expect(s.bytes).toBeLessThanOrEqual(maxBytes);
      expect(Buffer.byteLength(s.json)).toBe(s.bytes);
      // A full batch leaves less room than one more reading plus the seq/time digits it was sized for.
      expect(maxBytes - s.bytes).toBeLessThan(2 * Buffer.byteLength(JSON.stringify(reading(1))) + 20);
    }
    expect(sealed.reduce((n, s) => n + s.readings, 0)).toBe(12_000);
    for (const s of sealed) {
      const decoded = decodeTelemetryBatch(s.json);
      expect(decoded.ok).toBe(true);
    }
  });

  it('seals by age: deadline from the first reading, sealIfDue only once due', () => {
    const b = make({ maxAgeMs: 5_000 });
    expect(b.deadline()).toBeUndefined();
    b.add(reading(1), 10_000);
    b.add(reading(2), 12_000);
    expect(b.deadline()).toBe(15_000);
    expect(b.sealIfDue(14_999)).toBeUndefined();
    const s = b.sealIfDue(15_000);
    expect(s?.readings).toBe(2);
    expect(s?.sealedAt).toBe(15_000);
    expect(b.deadline()).toBeUndefined();
    expect(b.sealIfDue(99_999)).toBeUndefined();
  });

  it('carries thingName, bootId and seq in the payload', () => {
    const b = make({ maxReadings: 1 });
    const [s] = b.add(reading(1), 42);
    const decoded = decodeTelemetryBatch(s?.json ?? '');
    expect(decoded.ok && decoded.value).toMatchObject({ v: 1, thingName: 'pi-01', bootId, seq: 1, sealedAt: 42 });
  });

  it('seals a lone reading above maxBytes on its own, and drops one above the 128 KB limit', () => {
    const b = make({ maxBytes: 512 });
    b.add(reading(1), 1);
    const big: Reading = { sensor: 'x', ts: 1, metrics: {} };
    for (let i = 0; i < 100; i++) (big.metrics as Record<string, number>)[`m${i}`] = i;
    const sealed = b.add(big, 2);
    expect(sealed.map((s) => s.readings)).toEqual([1, 1]);
    expect(sealed[1]?.bytes).toBeGreaterThan(512);
    const huge: Reading = { sensor: 'x', ts: 1, metrics: {} };
    for (let i = 0; i < 8000; i++) (huge.metrics as Record<string, number>)[`metric_${i}`] = i;
    expect(b.add(huge, 3)).toEqual([]);
    expect(b.oversizeDropped).toBe(1);
    expect(b.pending).toBe(0);
    expect(LIMITS.maxMessageBytes).toBe(131072);
  });

  it('setLimits seals when the open batch already breaks the new limits', () => {
    const b = make({ maxReadings: 100 });
    for (let i = 0; i < 10; i++) b.add(reading(i), i);
    expect(b.setLimits({ maxReadings: 200, maxBytes: 120 * 1024, maxAgeMs: 10_000 }, 20)).toBeUndefined();
    const s = b.setLimits({ maxReadings: 5, maxBytes: 120 * 1024, maxAgeMs: 10_000 }, 21);
    expect(s?.readings).toBe(10);
  });
});
