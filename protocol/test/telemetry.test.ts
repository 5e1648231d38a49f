import { describe, expect, it } from 'vitest';
import {
  batchEnvelopeBytes,
  decodeTelemetryBatch,
  encodeTelemetryBatch,
  LIMITS,
  readingWireBytes,
  type TelemetryBatch,
  validateTelemetryBatch,
} from '../src/index.js';

const good = (): TelemetryBatch => ({
  v: 1,
  thingName: 'pi-01',
  bootId: '3f0c2b1e-8a44-4c1e-9a51-0b1f9d6c2e77',
  seq: 7,
  sealedAt: 1_700_000_010_000,
  readings: [
    { sensor: 'bme280', ts: 1_700_000_000_000, metrics: { temperature: 21.5, humidity: 40.25, pressure: 1013.2 } },
    { sensor: 'door', ts: 1_700_000_001_000, metrics: { open: true, count: 3 } },
  ],
});

describe('telemetry batch validation', () => {
  it('accepts a well-formed batch and returns it typed', () => {
    const r = validateTelemetryBatch(good());
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.readings[1]?.metrics.open).toBe(true);
  });

  it('reports every problem at once, each with its path', () => {
    const bad = {
      v: 2,
      thingName: 'bad name',
      bootId: 'x',
      seq: 0,
      sealedAt: -1,
      readings: [
        { sensor: 'ok', ts: 1, metrics: { t: 'hot' } },
        { sensor: 'has space', ts: 1.5, metrics: {} },
      ],
      extra: true,
    };
    const r = validateTelemetryBatch(bad);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'v',
        'thingName',
        'bootId',
        'seq',
        'sealedAt',
        'readings[0].metrics.t',
        'readings[1].sensor',
        'readings[1].ts',
        'readings[1].metrics',
        '$',
      ]),
    );
  });

  it.each([
    ['NaN metric', { metrics: { t: Number.NaN } }],
    ['Infinity metric', { metrics: { t: Number.POSITIVE_INFINITY } }],
    ['bad metric name', { metrics: { '1abc': 1 } }],
    ['null metric', { metrics: { t: null } }],
    ['string timestamp', { ts: '2024-01-01' }],
  ])('rejects a reading with %s', (_name, patch) => {
    const batch = good();
    const reading = { ...batch.readings[0], ...patch };
    const r = validateTelemetryBatch({ ...batch, readings: [reading] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.path).toMatch(/^readings\[0\]/);
  });

  it('rejects an empty batch', () => {
    const r = validateTelemetryBatch({ ...good(), readings: [] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.path).toBe('readings');
  });
});

describe('telemetry batch wire form', () => {
  it('encodes and decodes losslessly', () => {
    const enc = encodeTelemetryBatch(good());
    expect(enc.ok).toBe(true);
    if (!enc.ok) return;
    expect(enc.value.bytes).toBe(Buffer.byteLength(enc.value.json));
    const dec = decodeTelemetryBatch(Buffer.from(enc.value.json));
    expect(dec).toEqual({ ok: true, value: good() });
  });

  it('reports invalid JSON with its parser message', () => {
    const r = decodeTelemetryBatch('{"v":1,');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.message).toMatch(/^invalid JSON/);
  });

  it('refuses a batch over 128 KB on encode and decode', () => {
    const batch = good();
    const reading = batch.readings[0];
    if (!reading) throw new Error('fixture');
    const many = Array.from({ length: 2000 }, (_, i) => ({ ...reading, ts: reading.ts + i }));
    const big = { ...batch, readings: many };
    const enc = encodeTelemetryBatch(big);
    expect(enc.ok).toBe(false);
    if (!enc.ok) expect(enc.issues[0]?.message).toMatch(/at most 131072 bytes/);
    const dec = decodeTelemetryBatch(JSON.stringify(big));
    expect(dec.ok).toBe(false);
  });

  it('predicts the encoded size from the envelope and per-reading sizes', () => {
    const batch = good();
    const predicted =
      batchEnvelopeBytes(batch.thingName, batch.bootId, batch.seq, batch.sealedAt) +
      batch.readings.reduce((n, r) => n + readingWireBytes(r), 0) -
      1; // n readings are joined by n-1 commas
    const enc = encodeTelemetryBatch(batch);
    expect(enc.ok && enc.value.bytes).toBe(predicted);
    expect(predicted).toBeLessThan(LIMITS.maxMessageBytes);
  });
});
