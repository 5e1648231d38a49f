import { RESERVED_KEYS } from './json.js';
import { METRIC_NAME_PATTERN, SENSOR_ID_PATTERN } from './telemetry.js';
import { isValidThingName } from './topics.js';

/**
 * A quick yes for a telemetry batch v1 that is exactly what the schema in `telemetry.ts` accepts,
 * checked by hand: the local core's ingest validates every batch it stores, and zod's checks were
 * 5–6 % of the core's main thread at 200 batches/s. It never says yes to anything the schema
 * refuses (the tests compare the two on valid batches and on every kind of fault); it may say no
 * to an odd batch the schema accepts (an object with a prototype other than Object's), and then
 * the schema decides, and reports every problem with its path.
 */

const MAX_READINGS = 10_000;

function plainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const nonNegativeInt = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/** Exactly these own keys, each present (an own `__proto__` key counts, so it cannot hide). */
function hasExactly(o: Record<string, unknown>, keys: readonly string[]): boolean {
  if (Object.keys(o).length !== keys.length) return false;
  for (const k of keys) if (!Object.hasOwn(o, k)) return false;
  return true;
}

const BATCH_KEYS = ['v', 'thingName', 'bootId', 'seq', 'sealedAt', 'readings'] as const;
const READING_KEYS = ['sensor', 'ts', 'metrics'] as const;

function wellFormedMetrics(m: unknown): boolean {
  if (!plainObject(m)) return false;
  let n = 0;
  for (const name in m) {
    if (!Object.hasOwn(m, name)) return false;
    if (!METRIC_NAME_PATTERN.test(name) || RESERVED_KEYS.has(name)) return false;
    const value = m[name];
    if (typeof value === 'number' ? !Number.isFinite(value) : typeof value !== 'boolean') return false;
    n++;
  }
  return n > 0;
}

function wellFormedReading(r: unknown): boolean {
  if (!plainObject(r) || !hasExactly(r, READING_KEYS)) return false;
  const sensor = r.sensor;
  return (
    typeof sensor === 'string' &&
    SENSOR_ID_PATTERN.test(sensor) &&
    !RESERVED_KEYS.has(sensor) &&
    nonNegativeInt(r.ts) &&
    wellFormedMetrics(r.metrics)
  );
}

/** True only for a batch v1 that the schema accepts as it is. */
export function isWellFormedBatchV1(input: unknown): boolean {
  if (!plainObject(input) || !hasExactly(input, BATCH_KEYS)) return false;
  const { v, thingName, bootId, seq, sealedAt, readings } = input;
  if (v !== 1 || !isValidThingName(thingName)) return false;
  if (typeof bootId !== 'string' || bootId.length < 8 || bootId.length > 64) return false;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || !nonNegativeInt(sealedAt)) return false;
  if (!Array.isArray(readings) || readings.length < 1 || readings.length > MAX_READINGS) return false;
  for (let i = 0; i < readings.length; i++) if (!wellFormedReading(readings[i])) return false;
  return true;
}
