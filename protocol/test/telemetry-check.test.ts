import { describe, expect, it } from 'vitest';
import { validateTelemetryBatch } from '../src/telemetry.js';
import { isWellFormedBatchV1, isWellFormedBatchV2 } from '../src/telemetry-check.js';
import { validateTelemetryBatchV2 } from '../src/telemetry-v2.js';

/** A fresh valid batch, as JSON.parse makes it (the ingest path's input). */
function batch(readings = 3): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({
      v: 1,
      thingName: 'pi-01',
      bootId: '3f0c2a9e-7b1d-4c55-9a7e-0f4f6b2d9c11',
      seq: 7,
      sealedAt: 1_700_000_010_000,
      readings: Array.from({ length: readings }, (_, i) =>
        i % 2 === 0
          ? { sensor: 'env', ts: 1_700_000_000_000 + i, metrics: { temperature: 21.5, humidity: 40 } }
          : { sensor: 'door:1', ts: 1_700_000_000_000 + i, metrics: { open: true } },
      ),
    }),
  ) as Record<string, unknown>;
}

type Mutation = readonly [string, (b: Record<string, unknown>) => unknown];
const reading0 = (b: Record<string, unknown>) =>
  (b.readings as Record<string, unknown>[])[0] as Record<string, unknown>;
const metrics0 = (b: Record<string, unknown>) => reading0(b).metrics as Record<string, unknown>;

/** Every way a batch can be wrong, one at a time. */
/** A copy of `items` with a hole (no own element, not `undefined`) at `index`, as JSON can never give. */
function holeAt<T>(items: T[], index: number): T[] {
  const copy = [...items];
  delete copy[index];
  return copy;
}

const MUTATIONS: readonly Mutation[] = [
  ['not an object', () => 'batch'],
  ['null', () => null],
  ['an array', (b) => [b]],
  ['an extra key', (b) => ({ ...b, extra: 1 })],
  ['v missing', ({ v: _v, ...rest }) => rest],
  ['v 2', (b) => ({ ...b, v: 2 })],
  ['v "1"', (b) => ({ ...b, v: '1' })],
  ['an own __proto__ key', (b) => JSON.parse(JSON.stringify(b).replace('{"v":1', '{"__proto__":{},"v":1'))],
  ['a bad thing name', (b) => ({ ...b, thingName: 'pi 01' })],
  ['an empty thing name', (b) => ({ ...b, thingName: '' })],
  ['a long thing name', (b) => ({ ...b, thingName: 'x'.repeat(129) })],
  ['a short boot id', (b) => ({ ...b, bootId: 'abc' })],
  ['a long boot id', (b) => ({ ...b, bootId: 'x'.repeat(65) })],
  ['a numeric boot id', (b) => ({ ...b, bootId: 12345678 })],
  ['seq 0', (b) => ({ ...b, seq: 0 })],
  ['seq 1.5', (b) => ({ ...b, seq: 1.5 })],
  ['seq beyond 2^53', (b) => ({ ...b, seq: 2 ** 53 })],
  ['seq NaN', (b) => ({ ...b, seq: Number.NaN })],
  ['sealedAt -1', (b) => ({ ...b, sealedAt: -1 })],
  ['sealedAt Infinity', (b) => ({ ...b, sealedAt: Number.POSITIVE_INFINITY })],
  ['sealedAt a string', (b) => ({ ...b, sealedAt: '1700000000000' })],
  ['no readings', (b) => ({ ...b, readings: [] })],
  ['readings an object', (b) => ({ ...b, readings: { 0: reading0(b) } })],
  ['10,001 readings', (b) => ({ ...b, readings: Array.from({ length: 10_001 }, () => reading0(b)) })],
  ['a hole in the readings', (b) => ({ ...b, readings: holeAt([reading0(b), reading0(b), reading0(b)], 1) })],
  ['a null reading', (b) => ({ ...b, readings: [null] })],
  ['a reading with an extra key', (b) => ({ ...b, readings: [{ ...reading0(b), unit: 'C' }] })],
  ['a reading without ts', (b) => ({ ...b, readings: [{ sensor: 'env', metrics: { t: 1 } }] })],
  ['a negative ts', (b) => ({ ...b, readings: [{ ...reading0(b), ts: -5 }] })],
  ['a fractional ts', (b) => ({ ...b, readings: [{ ...reading0(b), ts: 1.25 }] })],
  ['a bad sensor id', (b) => ({ ...b, readings: [{ ...reading0(b), sensor: 'env sensor' }] })],
  ['a long sensor id', (b) => ({ ...b, readings: [{ ...reading0(b), sensor: 's'.repeat(65) }] })],
  ['sensor id constructor', (b) => ({ ...b, readings: [{ ...reading0(b), sensor: 'constructor' }] })],
  ['sensor id __proto__', (b) => ({ ...b, readings: [{ ...reading0(b), sensor: '__proto__' }] })],
  ['empty metrics', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: {} }] })],
  ['metrics an array', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: [1] }] })],
  ['a metric named constructor', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { constructor: 1 } }] })],
  ['a metric named prototype', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { prototype: 1 } }] })],
  [
    'an own __proto__ metric',
    (b) => ({ ...b, readings: [{ ...reading0(b), metrics: JSON.parse('{"__proto__":1,"t":2}') }] }),
  ],
  ['a metric name starting with a digit', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { '1t': 1 } }] })],
  ['a NaN metric', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { t: Number.NaN } }] })],
  ['an infinite metric', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { t: Number.NEGATIVE_INFINITY } }] })],
  ['a string metric', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { t: '21.5' } }] })],
  ['a null metric', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { t: null } }] })],
  ['a nested metric', (b) => ({ ...b, readings: [{ ...reading0(b), metrics: { t: { v: 1 } } }] })],
  [
    'an inherited metric',
    (b) => {
      const m = Object.create({ inherited: 1 }) as Record<string, unknown>;
      m.t = 1;
      return { ...b, readings: [{ ...reading0(b), metrics: m }] };
    },
  ],
  ['a class instance as batch', (b) => Object.assign(new (class Batch {})(), b)],
  [
    'metrics mutated in place to hold a bad value',
    (b) => {
      metrics0(b).humidity = Number.NaN;
      return b;
    },
  ],
];

describe('isWellFormedBatchV1 (the ingest fast path)', () => {
  it('says yes to valid batches, as the schema does', () => {
    for (const n of [1, 2, 10, 100]) {
      const b = batch(n);
      expect(validateTelemetryBatch(b).ok).toBe(true);
      expect(isWellFormedBatchV1(b)).toBe(true);
    }
    expect(isWellFormedBatchV1(batch(10_000))).toBe(true);
  });

  it.each(MUTATIONS)('says no to %s, and so does the schema (or the schema decides)', (_name, mutate) => {
    const input = mutate(batch());
    // The promise: never yes where the schema says no.
    if (isWellFormedBatchV1(input)) expect(validateTelemetryBatch(input).ok).toBe(true);
    expect(isWellFormedBatchV1(input)).toBe(false);
  });

  it('never says yes where the schema says no, over random combinations of faults', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let disagreements = 0;
    for (let i = 0; i < 2_000; i++) {
      let input: unknown = batch(1 + Math.floor(random() * 4));
      const faults = Math.floor(random() * 3);
      for (let f = 0; f < faults; f++) {
        const [, mutate] = MUTATIONS[Math.floor(random() * MUTATIONS.length)] as Mutation;
        try {
          input = mutate(input as Record<string, unknown>);
        } catch {
          // a mutation that does not apply to what the previous one made
        }
      }
      const fast = isWellFormedBatchV1(input);
      const schema = validateTelemetryBatch(input).ok;
      if (fast && !schema) disagreements++;
      if (faults === 0) expect(fast).toBe(true);
    }
    expect(disagreements).toBe(0);
  });
});

/** A fresh valid batch v2, as JSON.parse makes it. */
function batchV2(): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({
      v: 2,
      thingName: 'pi-01',
      bootId: '3f0c2a9e-7b1d-4c55-9a7e-0f4f6b2d9c11',
      seq: 7,
      sealedAt: 1_700_000_010_000,
      t0: 1_700_000_000_000,
      sensors: [
        {
          sensor: 'env',
          dt: [0, 1000, 2000],
          metrics: { temperature: [21.5, 36.2, -4], humidity: [40, 41, 40.5] },
          peak: { temperature: 36.2, humidity: 41 },
        },
        { sensor: 'door:1', dt: [500], metrics: { open: [true] } },
        { sensor: 'mixed', dt: [0, 1], metrics: { v: [true, 3] }, peak: { v: 3 } },
      ],
    }),
  ) as Record<string, unknown>;
}

const group0 = (b: Record<string, unknown>) => (b.sensors as Record<string, unknown>[])[0] as Record<string, unknown>;
const withGroup = (b: Record<string, unknown>, g: Record<string, unknown>) => ({
  ...b,
  sensors: [g, ...(b.sensors as unknown[]).slice(1)],
});

const MUTATIONS_V2: readonly Mutation[] = [
  ['not an object', () => 7],
  ['an extra key', (b) => ({ ...b, readings: [] })],
  ['t0 missing', ({ t0: _t, ...rest }) => rest],
  ['t0 negative', (b) => ({ ...b, t0: -1 })],
  ['t0 fractional', (b) => ({ ...b, t0: 0.5 })],
  ['v 1', (b) => ({ ...b, v: 1 })],
  ['a bad thing name', (b) => ({ ...b, thingName: 'a/b' })],
  ['a short boot id', (b) => ({ ...b, bootId: 'x' })],
  ['seq 0', (b) => ({ ...b, seq: 0 })],
  ['no groups', (b) => ({ ...b, sensors: [] })],
  ['a null group', (b) => ({ ...b, sensors: [null] })],
  ['a group with an extra key', (b) => withGroup(b, { ...group0(b), unit: 'C' })],
  ['a group without dt', (b) => withGroup(b, (({ dt: _d, ...g }) => g)(group0(b)))],
  ['an empty dt', (b) => withGroup(b, { ...group0(b), dt: [] })],
  ['a negative offset', (b) => withGroup(b, { ...group0(b), dt: [0, -1, 2] })],
  ['a fractional offset', (b) => withGroup(b, { ...group0(b), dt: [0, 1.5, 2] })],
  ['a hole in dt', (b) => withGroup(b, { ...group0(b), dt: holeAt([0, 1, 2], 1) })],
  ['t0 + dt past 2^53', (b) => ({ ...b, t0: Number.MAX_SAFE_INTEGER - 10 })],
  ['a short column', (b) => withGroup(b, { ...group0(b), metrics: { temperature: [1], humidity: [1, 2, 3] } })],
  ['a NaN value', (b) => withGroup(b, { ...group0(b), metrics: { temperature: [1, Number.NaN, 2] } })],
  ['a string value', (b) => withGroup(b, { ...group0(b), metrics: { temperature: [1, '2', 3] } })],
  ['empty metrics', (b) => withGroup(b, { ...group0(b), metrics: {}, peak: {} })],
  ['a reserved metric name', (b) => withGroup(b, { ...group0(b), metrics: { constructor: [1, 2, 3] } })],
  [
    'an own __proto__ metric',
    (b) => withGroup(b, { ...group0(b), metrics: JSON.parse('{"__proto__":[1,2,3],"t":[1,2,3]}'), peak: { t: 3 } }),
  ],
  ['a wrong peak', (b) => withGroup(b, { ...group0(b), peak: { temperature: 99, humidity: 41 } })],
  ['a missing peak', (b) => withGroup(b, { ...group0(b), peak: { temperature: 36.2 } })],
  ['no peak at all', (b) => withGroup(b, (({ peak: _p, ...g }) => g)(group0(b)))],
  [
    'a peak for a boolean column',
    (b) => ({ ...b, sensors: [{ sensor: 'd', dt: [0], metrics: { o: [true] }, peak: { o: 1 } }] }),
  ],
  ['a peak naming no metric', (b) => withGroup(b, { ...group0(b), peak: { temperature: 36.2, humidity: 41, x: 1 } })],
  [
    'an own __proto__ peak',
    (b) => withGroup(b, { ...group0(b), peak: JSON.parse('{"__proto__":1,"temperature":36.2,"humidity":41}') }),
  ],
  ['a peak that is an array', (b) => withGroup(b, { ...group0(b), peak: [36.2] })],
  ['a bad sensor id', (b) => withGroup(b, { ...group0(b), sensor: 'a b' })],
  [
    '10,001 readings over two groups',
    (b) => ({
      ...b,
      sensors: [5_000, 5_001].map((n, i) => ({
        sensor: `s${i}`,
        dt: Array.from({ length: n }, (_, k) => k),
        metrics: { o: Array.from({ length: n }, () => true) },
      })),
    }),
  ],
];

describe('isWellFormedBatchV2 (the ingest fast path for version 2)', () => {
  it('says yes to a valid batch, as the schema does', () => {
    const b = batchV2();
    expect(validateTelemetryBatchV2(b).ok).toBe(true);
    expect(isWellFormedBatchV2(b)).toBe(true);
    expect(isWellFormedBatchV1(b)).toBe(false);
    expect(isWellFormedBatchV2(batch())).toBe(false);
  });

  it.each(MUTATIONS_V2)('says no to %s', (_name, mutate) => {
    const input = mutate(batchV2());
    if (isWellFormedBatchV2(input)) expect(validateTelemetryBatchV2(input).ok).toBe(true);
    expect(isWellFormedBatchV2(input)).toBe(false);
  });

  it('never says yes where the schema says no, over random combinations of faults', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let disagreements = 0;
    for (let i = 0; i < 2_000; i++) {
      let input: unknown = batchV2();
      const faults = Math.floor(random() * 3);
      for (let f = 0; f < faults; f++) {
        const [, mutate] = MUTATIONS_V2[Math.floor(random() * MUTATIONS_V2.length)] as Mutation;
        try {
          input = mutate(input as Record<string, unknown>);
        } catch {
          // a mutation that does not apply to what the previous one made
        }
      }
      const fast = isWellFormedBatchV2(input);
      if (fast && !validateTelemetryBatchV2(input).ok) disagreements++;
      if (faults === 0) expect(fast).toBe(true);
    }
    expect(disagreements).toBe(0);
  });
});
