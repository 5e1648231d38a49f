import { describe, expect, it } from 'vitest';
import { validateTelemetryBatch } from '../src/telemetry.js';
import { isWellFormedBatchV1 } from '../src/telemetry-check.js';

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
  ['a hole in the readings', (b) => ({ ...b, readings: [reading0(b), , reading0(b)] })],
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
  ['metrics mutated in place to hold a bad value', (b) => ((metrics0(b).humidity = Number.NaN), b)],
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
