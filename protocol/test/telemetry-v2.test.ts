import { describe, expect, it } from 'vitest';
import {
  decodeTelemetryBatch,
  encodeTelemetryBatch,
  encodeTelemetryBatchV2,
  expandTelemetryBatchV2,
  MAX_JSON_DEPTH,
  type Reading,
  type TelemetryBatch,
  type TelemetryBatchV2,
  telemetryReadingCount,
  toTelemetryBatchV2,
  validateAnyTelemetryBatch,
  validateTelemetryBatchV2,
} from '../src/index.js';

const identity = {
  thingName: 'pi-01',
  bootId: '3f0c2b1e-8a44-4c1e-9a51-0b1f9d6c2e77',
  seq: 7,
  sealedAt: 1_700_000_010_000,
};

const readings = (): Reading[] => [
  { sensor: 'bme280', ts: 1_700_000_001_000, metrics: { temperature: 21.5, humidity: 40.25 } },
  { sensor: 'door', ts: 1_700_000_000_000, metrics: { open: true, count: 3 } },
  { sensor: 'bme280', ts: 1_700_000_002_000, metrics: { temperature: 36.5, humidity: 39 } },
  // The same sensor with other metrics: a group of its own.
  { sensor: 'bme280', ts: 1_700_000_003_000, metrics: { temperature: -4 } },
];

const good = (): TelemetryBatchV2 => toTelemetryBatchV2({ ...identity, readings: readings() });

/** A group as JSON text would give it, for inputs a JS object literal cannot express (`__proto__`). */
const fromText = (text: string): unknown => JSON.parse(text);

const paths = (input: unknown): string[] => {
  const r = validateAnyTelemetryBatch(input);
  return r.ok ? [] : r.issues.map((i) => i.path);
};

describe('telemetry batch v2: shape', () => {
  it('groups per sensor and metric names, times as offsets from the earliest reading, peaks per numeric metric', () => {
    expect(good()).toEqual({
      v: 2,
      ...identity,
      t0: 1_700_000_000_000,
      sensors: [
        {
          sensor: 'bme280',
          dt: [1000, 2000],
          metrics: { temperature: [21.5, 36.5], humidity: [40.25, 39] },
          peak: { temperature: 36.5, humidity: 40.25 },
        },
        { sensor: 'door', dt: [0], metrics: { open: [true], count: [3] }, peak: { count: 3 } },
        { sensor: 'bme280', dt: [3000], metrics: { temperature: [-4] }, peak: { temperature: -4 } },
      ],
    });
  });

  it('expands into the same identity and readings as v1 (group by group)', () => {
    const checked = validateTelemetryBatchV2(JSON.parse(JSON.stringify(good())));
    if (!checked.ok) throw new Error(JSON.stringify(checked.issues));
    const expanded = expandTelemetryBatchV2(checked.value);
    const v1: TelemetryBatch = { v: 1, ...identity, readings: readings() };
    expect({ ...expanded, readings: [] }).toEqual({ ...v1, readings: [] });
    const byKey = (r: Reading) => `${r.sensor}@${r.ts}`;
    expect([...expanded.readings].sort((a, b) => byKey(a).localeCompare(byKey(b)))).toEqual(
      [...v1.readings].sort((a, b) => byKey(a).localeCompare(byKey(b))),
    );
  });

  it('decodeTelemetryBatch takes v1 and v2 payloads and returns readings either way', () => {
    const v2 = encodeTelemetryBatchV2(good());
    const v1 = encodeTelemetryBatch({ v: 1, ...identity, readings: readings() });
    if (!v1.ok || !v2.ok) throw new Error('fixture');
    const a = decodeTelemetryBatch(Buffer.from(v2.value.json));
    const b = decodeTelemetryBatch(v1.value.json);
    expect(a.ok && a.value.readings.length).toBe(4);
    expect(b.ok && b.value.readings).toEqual(readings());
    expect(v2.value.bytes).toBe(Buffer.byteLength(v2.value.json));
  });

  it('a boolean-only group has no peak; an empty peak is also accepted', () => {
    const b = toTelemetryBatchV2({ ...identity, readings: [{ sensor: 'door', ts: 5, metrics: { open: false } }] });
    expect(b.sensors[0]).toEqual({ sensor: 'door', dt: [0], metrics: { open: [false] } });
    expect(validateTelemetryBatchV2(b).ok).toBe(true);
    expect(validateTelemetryBatchV2({ ...b, sensors: [{ ...b.sensors[0], peak: {} }] }).ok).toBe(true);
  });
});

describe('telemetryReadingCount', () => {
  it.each([
    ['a v2 batch', good(), 4],
    ['a v1 batch', { v: 1, ...identity, readings: readings() }, 4],
    ['groups without dt, or not objects', { sensors: [{}, 1, null, { dt: [1, 2] }] }, 2],
    ['null', null, 0],
    ['an array', [1, 2, 3], 0],
    ['a string', 'readings', 0],
    ['an object without readings', { v: 2 }, 0],
    ['inherited readings', Object.create({ readings: [1, 2] }) as unknown, 0],
  ])('counts %s', (_what, payload, n) => {
    expect(telemetryReadingCount(payload)).toBe(n);
  });
});

describe('telemetry batch v2: hostile input, every problem with its path', () => {
  it('reports every problem at once', () => {
    const bad = {
      v: 2,
      thingName: 'bad name',
      bootId: 'x',
      seq: 0,
      sealedAt: -1,
      t0: 1.5,
      sensors: [
        { sensor: 'has space', dt: [0, -1, 0.5], metrics: { temperature: [1, 'hot', null] }, peak: {} },
        { sensor: 'ok', dt: [], metrics: {}, extra: 1 },
      ],
      extra: true,
    };
    expect(paths(bad)).toEqual(
      expect.arrayContaining([
        'thingName',
        'bootId',
        'seq',
        'sealedAt',
        't0',
        'sensors[0].sensor',
        'sensors[0].dt[1]',
        'sensors[0].dt[2]',
        'sensors[0].metrics.temperature[1]',
        'sensors[0].metrics.temperature[2]',
        'sensors[1].dt',
        'sensors[1].metrics',
        'sensors[1]',
        '$',
      ]),
    );
  });

  it.each([
    [
      'a column shorter than dt',
      { metrics: { temperature: [21.5], humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature',
    ],
    [
      'a column longer than dt',
      { metrics: { temperature: [21.5, 36.5, 1], humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature',
    ],
    [
      'a peak that is not the highest value',
      { peak: { temperature: 21.5, humidity: 40.25 } },
      'sensors[0].peak.temperature',
    ],
    ['a peak above every value', { peak: { temperature: 99, humidity: 40.25 } }, 'sensors[0].peak.temperature'],
    ['a missing peak', { peak: { humidity: 40.25 } }, 'sensors[0].peak.temperature'],
    ['no peak object at all', { peak: undefined }, 'sensors[0].peak.temperature'],
    ['a peak for no metric', { peak: { temperature: 36.5, humidity: 40.25, wind: 1 } }, 'sensors[0].peak.wind'],
    ['a peak that is a string', { peak: { temperature: '36.5', humidity: 40.25 } }, 'sensors[0].peak.temperature'],
    [
      'a NaN value',
      { metrics: { temperature: [Number.NaN, 36.5], humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature[0]',
    ],
    [
      'an Infinity value',
      { metrics: { temperature: [Number.POSITIVE_INFINITY, 36.5], humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature[0]',
    ],
    [
      'an object value',
      { metrics: { temperature: [{}, 36.5], humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature[0]',
    ],
    [
      'a nested array value',
      { metrics: { temperature: [[1], 36.5], humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature[0]',
    ],
    [
      'a column that is not an array',
      { metrics: { temperature: 21.5, humidity: [40.25, 39] } },
      'sensors[0].metrics.temperature',
    ],
    ['an empty column', { metrics: { temperature: [], humidity: [40.25, 39] } }, 'sensors[0].metrics.temperature'],
    ['a bad metric name', { metrics: { '1abc': [1, 2] } }, 'sensors[0].metrics["1abc"]'],
    ['a metric named constructor', { metrics: { constructor: [1, 2] } }, 'sensors[0].metrics.constructor'],
    ['a sensor named prototype', { sensor: 'prototype' }, 'sensors[0].sensor'],
    ['a string offset', { dt: ['1000', 2000] }, 'sensors[0].dt[0]'],
  ])('refuses %s', (_what, patch, path) => {
    const b = good();
    const group = { ...b.sensors[0], ...patch };
    if ('peak' in patch && patch.peak === undefined) delete (group as { peak?: unknown }).peak;
    expect(paths({ ...b, sensors: [group, ...b.sensors.slice(1)] })).toContain(path);
  });

  it.each([
    ['metrics', '{"__proto__":[1]}', 'sensors[0].metrics.__proto__'],
    ['peak', '{"__proto__":1}', 'sensors[0].peak.__proto__'],
  ])('refuses a __proto__ key in %s (as JSON.parse makes it: an own key)', (field, json, path) => {
    const b = good();
    const group = { sensor: 'x', dt: [0], metrics: { a: [1] }, peak: { a: 1 }, [field]: fromText(json) };
    expect(paths({ ...b, sensors: [group] })).toContain(path);
  });

  it.each([
    ['at the top level', (t: string) => t.replace('{"v":2', '{"__proto__":{"polluted":1},"v":2'), '$'],
    [
      'in a group',
      (t: string) => t.replace('{"sensor":"bme280"', '{"__proto__":{"polluted":1},"sensor":"bme280"'),
      'sensors[0]',
    ],
    ['as a sensor id', (t: string) => t.replace('"sensor":"bme280"', '"sensor":"__proto__"'), 'sensors[0].sensor'],
  ])('refuses a __proto__ key %s, as JSON.parse gives it', (_where, edit, path) => {
    const r = decodeTelemetryBatch(edit(JSON.stringify(good())));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toContain(path);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses more than 10,000 readings across groups', () => {
    const b = good();
    const group = (sensor: string) => ({
      sensor,
      dt: Array.from({ length: 6_000 }, (_, i) => i),
      metrics: { t: Array.from({ length: 6_000 }, () => 1) },
      peak: { t: 1 },
    });
    const r = validateTelemetryBatchV2({ ...b, sensors: [group('a'), group('b')] });
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.issues).toContainEqual({ path: 'sensors', message: expect.stringMatching(/12000 readings.*10000/) });
    expect(validateTelemetryBatchV2({ ...b, sensors: [group('a')] }).ok).toBe(true);
  });

  it('refuses times past the largest exact integer', () => {
    const b = good();
    expect(paths({ ...b, t0: Number.MAX_SAFE_INTEGER - 10 })).toContain('sensors[0].dt');
  });

  it.each([
    ['no groups', { sensors: [] }, 'sensors'],
    ['groups not an array', { sensors: {} }, 'sensors'],
    ['a group that is not an object', { sensors: [1] }, 'sensors[0]'],
    ['a v1 readings array under v2', { readings: [] }, '$'],
  ])('refuses %s', (_what, patch, path) => {
    expect(paths({ ...good(), ...patch })).toContain(path);
  });

  it('names an unknown version instead of what v1 expected', () => {
    const r = validateAnyTelemetryBatch({ ...good(), v: 3 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]).toEqual({ path: 'v', message: 'unknown telemetry batch version; expected 1 or 2' });
    expect(paths({ ...good(), v: '2' })).toContain('v');
    expect(paths(null)).toEqual(['$']);
    expect(paths([good()])).toEqual(['$']);
  });

  it('refuses JSON nested deeper than the limit, and a payload over 128 KB, before validating', () => {
    const deep = `{"v":2,"sensors":${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}}`;
    const d = decodeTelemetryBatch(deep);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.issues).toEqual([{ path: '$', message: expect.stringMatching(/nested more than 64/) }]);
    const huge = decodeTelemetryBatch(' '.repeat(128 * 1024 + 1));
    expect(huge.ok).toBe(false);
    if (!huge.ok) expect(huge.issues[0]?.message).toMatch(/at most 131072 bytes/);
    const empty = decodeTelemetryBatch('');
    expect(empty.ok).toBe(false);
    if (!empty.ok) expect(empty.issues[0]?.message).toMatch(/^invalid JSON/);
  });

  it('refuses to encode a v2 batch over 128 KB', () => {
    const many: Reading[] = Array.from({ length: 9_000 }, (_, i) => ({
      sensor: `s${i}`,
      ts: i,
      metrics: { value: i + 0.123456789 },
    }));
    const enc = encodeTelemetryBatchV2(toTelemetryBatchV2({ ...identity, readings: many }));
    expect(enc.ok).toBe(false);
    if (!enc.ok) expect(enc.issues[0]?.message).toMatch(/at most 131072 bytes/);
  });
});
