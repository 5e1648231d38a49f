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

const BATCH_V2_KEYS = ['v', 'thingName', 'bootId', 'seq', 'sealedAt', 't0', 'sensors'] as const;
const GROUP_KEYS = ['sensor', 'dt', 'metrics'] as const;
const GROUP_KEYS_WITH_PEAK = ['sensor', 'dt', 'metrics', 'peak'] as const;

/** The readings of a well-formed group (its `dt` length), or -1. */
function wellFormedGroup(g: unknown, t0: number): number {
  if (!plainObject(g)) return -1;
  if (!hasExactly(g, Object.hasOwn(g, 'peak') ? GROUP_KEYS_WITH_PEAK : GROUP_KEYS)) return -1;
  const { sensor, dt, metrics, peak } = g;
  if (typeof sensor !== 'string' || !SENSOR_ID_PATTERN.test(sensor) || RESERVED_KEYS.has(sensor)) return -1;
  if (!Array.isArray(dt) || dt.length < 1 || dt.length > MAX_READINGS) return -1;
  let latest = 0;
  for (let i = 0; i < dt.length; i++) {
    const d = dt[i];
    if (!nonNegativeInt(d)) return -1;
    if (d > latest) latest = d;
  }
  if (t0 + latest > Number.MAX_SAFE_INTEGER) return -1;
  if (!plainObject(metrics)) return -1;
  const peaks = peak === undefined ? undefined : plainObject(peak) ? peak : null;
  if (peaks === null) return -1;
  let names = 0;
  for (const name in metrics) {
    if (!Object.hasOwn(metrics, name) || !METRIC_NAME_PATTERN.test(name) || RESERVED_KEYS.has(name)) return -1;
    const column = metrics[name];
    if (!Array.isArray(column) || column.length !== dt.length) return -1;
    let highest: number | undefined;
    for (let i = 0; i < column.length; i++) {
      const value = column[i];
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) return -1;
        if (highest === undefined || value > highest) highest = value;
      } else if (typeof value !== 'boolean') return -1;
    }
    const stated = peaks !== undefined && Object.hasOwn(peaks, name) ? peaks[name] : undefined;
    if (stated !== highest) return -1;
    names++;
  }
  if (names === 0) return -1;
  if (peaks !== undefined) {
    for (const name in peaks) if (!Object.hasOwn(peaks, name) || !Object.hasOwn(metrics, name)) return -1;
  }
  return dt.length;
}

/** True only for a batch v2 that its schema (`telemetry-v2.ts`) accepts as it is. */
export function isWellFormedBatchV2(input: unknown): boolean {
  if (!plainObject(input) || !hasExactly(input, BATCH_V2_KEYS)) return false;
  const { v, thingName, bootId, seq, sealedAt, t0, sensors } = input;
  if (v !== 2 || !isValidThingName(thingName)) return false;
  if (typeof bootId !== 'string' || bootId.length < 8 || bootId.length > 64) return false;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || !nonNegativeInt(sealedAt) || !nonNegativeInt(t0)) {
    return false;
  }
  if (!Array.isArray(sensors) || sensors.length < 1 || sensors.length > MAX_READINGS) return false;
  let readings = 0;
  for (let i = 0; i < sensors.length; i++) {
    const n = wellFormedGroup(sensors[i], t0 as number);
    if (n < 0) return false;
    readings += n;
  }
  return readings <= MAX_READINGS;
}
