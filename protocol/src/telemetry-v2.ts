import { z } from 'zod';
import { type Issue, recordOf, type Validation, validateWith } from './issues.js';
import { isJsonObject, ownValue, parseJson, setOwn } from './json.js';
import { LIMITS } from './limits.js';
import {
  type MetricValue,
  messageSizeIssue,
  metricNameSchema,
  metricValueSchema,
  type Reading,
  sensorIdSchema,
  TELEMETRY_VERSION,
  type TelemetryBatch,
  validateTelemetryBatch,
} from './telemetry.js';
import { isWellFormedBatchV1, isWellFormedBatchV2 } from './telemetry-check.js';
import { isValidThingName, utf8Length } from './topics.js';

/**
 * Telemetry batch, version 2: the same readings as version 1 in fewer bytes, still JSON an IoT
 * rule can read.
 *
 * ```json
 * { "v": 2, "thingName": "pi-01", "bootId": "3f0c…", "seq": 7, "sealedAt": 1700000010000,
 *   "t0": 1700000000000,
 *   "sensors": [
 *     { "sensor": "env", "dt": [0, 1000],
 *       "metrics": { "temperature": [21.5, 36.2], "humidity": [40.2, 40.1] },
 *       "peak": { "temperature": 36.2, "humidity": 40.2 } } ] }
 * ```
 *
 * Version 1 repeats `"sensor"`, a 13-digit `"ts"`, `"metrics"` and every metric name in every
 * reading; here readings of one sensor (with the same metric names) form a group that names the
 * sensor and its metrics once, each metric a column of values, and times are offsets in ms from
 * `t0` (the earliest reading). Reading `i` of a group is `{ sensor, ts: t0 + dt[i], metrics: { name:
 * metrics[name][i] } }`; {@link expandTelemetryBatchV2} turns a batch back into version 1's
 * readings, so everything after the decoder (stores, query, console) sees one shape.
 *
 * Why `peak`: AWS IoT SQL has no function over the elements of an array (no max, no any), and its
 * nested `SELECT … FROM <array> WHERE …` filters objects of one array. A rule cannot find a hot
 * value inside a column, but it can filter the groups on `peak.temperature > 35`, so each group
 * carries the highest value of each metric that has a number. The validator refuses a batch whose
 * peaks disagree with its columns: the rules and the store must see the same readings.
 *
 * `(thingName, bootId, seq)` identifies a batch exactly as in version 1.
 */
export const TELEMETRY_V2 = 2;

/** Readings one batch may carry, in either version (version 1's `readings` array has the same bound). */
export const MAX_BATCH_READINGS = 10_000;

const offsetSchema = z.number().int('must be a whole number of ms').nonnegative('must not be negative');

const columnSchema = z.array(metricValueSchema).min(1).max(MAX_BATCH_READINGS);

const peakSchema = z.number().refine(Number.isFinite, 'peak must be a finite number');

export const sensorGroupSchema = z
  .strictObject({
    /** Sensor id from the device config, for example `bme280` or `door`. */
    sensor: sensorIdSchema,
    /** Sample times, ms after the batch's `t0`, one per reading of the group. */
    dt: z.array(offsetSchema).min(1).max(MAX_BATCH_READINGS),
    /** Metric name → its values, one per `dt` entry (numbers or booleans). */
    metrics: recordOf(metricNameSchema, columnSchema).refine(
      (m) => Object.keys(m).length > 0,
      'a group needs at least one metric',
    ),
    /**
     * Metric name → the highest number in its column, for every column that has a number; left out
     * when no column has one (a door's `open`).
     */
    peak: recordOf(metricNameSchema, peakSchema).optional(),
  })
  .check((ctx) => {
    const g = ctx.value;
    const peaks = g.peak ?? {};
    for (const name of Object.keys(g.metrics)) {
      const column = ownValue(g.metrics, name) as MetricValue[];
      if (column.length !== g.dt.length) {
        ctx.issues.push({
          code: 'custom',
          input: column,
          path: ['metrics', name],
          message: `has ${column.length} values; dt has ${g.dt.length} (one value per reading)`,
        });
      }
      const highest = columnPeak(column);
      const stated = ownValue(peaks, name);
      if (highest === undefined) {
        if (stated !== undefined) {
          ctx.issues.push({
            code: 'custom',
            input: stated,
            path: ['peak', name],
            message: `metrics.${name} has no number, so it has no peak`,
          });
        }
      } else if (stated !== highest) {
        ctx.issues.push({
          code: 'custom',
          input: stated,
          path: ['peak', name],
          message: `must be the highest number in metrics.${name} (${highest})`,
        });
      }
    }
    for (const name of Object.keys(peaks)) {
      if (ownValue(g.metrics, name) === undefined) {
        ctx.issues.push({
          code: 'custom',
          input: ownValue(peaks, name),
          path: ['peak', name],
          message: 'names no metric of the group',
        });
      }
    }
  });

export const telemetryBatchV2Schema = z
  .strictObject({
    v: z.literal(TELEMETRY_V2),
    thingName: z.string().refine(isValidThingName, 'invalid thing name'),
    /** Random id of this agent boot (UUID). */
    bootId: z.string().min(8).max(64),
    /** 1, 2, 3, ... per boot. */
    seq: z.number().int().positive(),
    /** Time the batch was sealed, ms since the epoch. */
    sealedAt: z.number().int().nonnegative(),
    /** Base of the groups' `dt` offsets (the earliest reading), ms since the epoch. */
    t0: z.number().int().nonnegative(),
    sensors: z.array(sensorGroupSchema).min(1).max(MAX_BATCH_READINGS),
  })
  .check((ctx) => {
    const b = ctx.value;
    let readings = 0;
    b.sensors.forEach((g, i) => {
      readings += g.dt.length;
      let latest = 0;
      for (const d of g.dt) if (d > latest) latest = d;
      if (b.t0 + latest > Number.MAX_SAFE_INTEGER) {
        ctx.issues.push({
          code: 'custom',
          input: latest,
          path: ['sensors', i, 'dt'],
          message: 't0 + dt passes the largest exact integer (2^53 - 1)',
        });
      }
    });
    if (readings > MAX_BATCH_READINGS) {
      ctx.issues.push({
        code: 'custom',
        input: readings,
        path: ['sensors'],
        message: `holds ${readings} readings; a batch carries at most ${MAX_BATCH_READINGS}`,
      });
    }
  });

export type SensorGroup = z.infer<typeof sensorGroupSchema>;
export type TelemetryBatchV2 = z.infer<typeof telemetryBatchV2Schema>;

/** The highest number of a column, or undefined when it holds only booleans. */
function columnPeak(column: readonly MetricValue[]): number | undefined {
  let highest: number | undefined;
  for (const value of column) {
    if (typeof value === 'number' && (highest === undefined || value > highest)) highest = value;
  }
  return highest;
}

/** Validates a decoded version 2 batch; returns every problem with its path. */
export function validateTelemetryBatchV2(input: unknown): Validation<TelemetryBatchV2> {
  return validateWith(telemetryBatchV2Schema, input);
}

/**
 * The one way from version 2 to the readings everything downstream takes: a version 1 batch with
 * the same identity, `sealedAt` and readings (group by group, in `dt` order within a group).
 */
export function expandTelemetryBatchV2(batch: TelemetryBatchV2): TelemetryBatch {
  const readings: Reading[] = [];
  for (const g of batch.sensors) {
    const names = Object.keys(g.metrics);
    const columns = names.map((name) => ownValue(g.metrics, name) as MetricValue[]);
    for (let i = 0; i < g.dt.length; i++) {
      // Names passed metricNameSchema (no reserved names), so plain assignment makes own keys.
      const metrics: Record<string, MetricValue> = {};
      for (let k = 0; k < names.length; k++)
        metrics[names[k] as string] = (columns[k] as MetricValue[])[i] as MetricValue;
      readings.push({ sensor: g.sensor, ts: batch.t0 + (g.dt[i] as number), metrics });
    }
  }
  return {
    v: TELEMETRY_VERSION,
    thingName: batch.thingName,
    bootId: batch.bootId,
    seq: batch.seq,
    sealedAt: batch.sealedAt,
    readings,
  };
}

/**
 * Validates a batch of either version, the way the cloud takes telemetry: version 2 is expanded
 * into version 1's readings, version 1 passes as it is. Older agents keep publishing version 1.
 */
export function validateAnyTelemetryBatch(input: unknown): Validation<TelemetryBatch> {
  // Every batch a well-behaved agent sends passes these hand-written checks, at a fraction of the
  // schema's cost; anything else gets the schema, which reports every problem with its path.
  if (isWellFormedBatchV2(input)) return { ok: true, value: expandTelemetryBatchV2(input as TelemetryBatchV2) };
  if (isWellFormedBatchV1(input)) return { ok: true, value: input as TelemetryBatch };
  const v = isJsonObject(input) ? ownValue(input, 'v') : undefined;
  if (v === TELEMETRY_V2) {
    const checked = validateTelemetryBatchV2(input);
    return checked.ok ? { ok: true, value: expandTelemetryBatchV2(checked.value) } : checked;
  }
  if (v === TELEMETRY_VERSION || !isJsonObject(input)) return validateTelemetryBatch(input);
  const checked = validateTelemetryBatch(input);
  if (checked.ok) return checked;
  // A version neither decoder knows: say which versions there are, not what version 1 expected.
  const versionIssue: Issue = {
    path: 'v',
    message: `unknown telemetry batch version; expected ${TELEMETRY_VERSION} or ${TELEMETRY_V2}`,
  };
  return { ok: false, issues: [versionIssue, ...checked.issues.filter((i) => i.path !== 'v')] };
}

/** Decodes and validates a payload (bytes or text) of either version; version 2 comes back expanded. */
export function decodeTelemetryBatch(payload: Uint8Array | string): Validation<TelemetryBatch> {
  const bytes = typeof payload === 'string' ? utf8Length(payload) : payload.byteLength;
  if (bytes > LIMITS.maxMessageBytes) {
    return { ok: false, issues: [messageSizeIssue(bytes)] };
  }
  const text = typeof payload === 'string' ? payload : new TextDecoder('utf-8', { fatal: false }).decode(payload);
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const message = parsed.reason === 'depth' ? parsed.message : `invalid JSON: ${parsed.message}`;
    return { ok: false, issues: [{ path: '$', message }] };
  }
  return validateAnyTelemetryBatch(parsed.value);
}

/**
 * How many readings a parsed payload of either version says it carries, without validating or
 * expanding it: v1 `readings.length`, v2 the sum of the groups' `dt` lengths, 0 for anything else.
 * For counting what passes a broker (a baseline that stores nothing), not for accepting a batch.
 */
export function telemetryReadingCount(payload: unknown): number {
  if (!isJsonObject(payload)) return 0;
  const readings = ownValue(payload, 'readings');
  if (Array.isArray(readings)) return readings.length;
  const groups = ownValue(payload, 'sensors');
  if (!Array.isArray(groups)) return 0;
  let n = 0;
  for (const g of groups) {
    const dt = isJsonObject(g) ? ownValue(g, 'dt') : undefined;
    if (Array.isArray(dt)) n += dt.length;
  }
  return n;
}

/**
 * Groups readings into version 2's sensor groups: one group per sensor and metric names (in the
 * order the reading lists them), groups in the order their first reading came, readings in order
 * within a group. `t0` is the earliest time, so every offset is ≥ 0 whatever order the clock gave.
 */
export function compactReadings(readings: readonly Reading[]): { t0: number; sensors: SensorGroup[] } {
  let t0 = Number.POSITIVE_INFINITY;
  for (const r of readings) if (r.ts < t0) t0 = r.ts;
  if (!Number.isFinite(t0)) t0 = 0;
  const groups = new Map<string, SensorGroup>();
  for (const r of readings) {
    const names = Object.keys(r.metrics);
    const key = `${r.sensor}\u0000${names.join('\u0000')}`;
    let g = groups.get(key);
    if (g === undefined) {
      const metrics: Record<string, MetricValue[]> = {};
      for (const name of names) setOwn(metrics, name, []);
      g = { sensor: r.sensor, dt: [], metrics };
      groups.set(key, g);
    }
    g.dt.push(r.ts - t0);
    for (const name of names) {
      const value = ownValue(r.metrics, name) as MetricValue;
      (ownValue(g.metrics, name) as MetricValue[]).push(value);
      if (typeof value === 'number') {
        g.peak ??= {};
        const peak = ownValue(g.peak, name);
        if (peak === undefined || value > peak) setOwn(g.peak, name, value);
      }
    }
  }
  return { t0, sensors: [...groups.values()] };
}

/** A version 2 batch of the given readings (see {@link compactReadings}). */
export function toTelemetryBatchV2(b: {
  readonly thingName: string;
  readonly bootId: string;
  readonly seq: number;
  readonly sealedAt: number;
  readonly readings: readonly Reading[];
}): TelemetryBatchV2 {
  const { t0, sensors } = compactReadings(b.readings);
  return { v: TELEMETRY_V2, thingName: b.thingName, bootId: b.bootId, seq: b.seq, sealedAt: b.sealedAt, t0, sensors };
}

/** Encodes a version 2 batch and checks it against IoT Core's message size limit. */
export function encodeTelemetryBatchV2(batch: TelemetryBatchV2): Validation<{ json: string; bytes: number }> {
  const json = JSON.stringify(batch);
  const bytes = utf8Length(json);
  if (bytes > LIMITS.maxMessageBytes) return { ok: false, issues: [messageSizeIssue(bytes)] };
  return { ok: true, value: { json, bytes } };
}
