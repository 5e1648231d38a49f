import { z } from 'zod';
import { type Issue, recordOf, type Validation, validateWith } from './issues.js';
import { RESERVED_KEYS } from './json.js';
import { LIMITS } from './limits.js';
import { isValidThingName, utf8Length } from './topics.js';

/**
 * Telemetry batch, version 1: what a device publishes on `pifleet/{thing}/telemetry` (agents before
 * version 2, and any agent configured with `telemetry.encoding: v1`), and the readings shape every
 * decoder returns (version 2, in `telemetry-v2.ts`, expands into it).
 *
 * `(thingName, bootId, seq)` identifies a batch: `seq` starts at 1 for each boot of the agent
 * and increases by one per batch, so storage can drop a batch it has already stored when the
 * device resends it after a lost acknowledgement.
 */
export const TELEMETRY_VERSION = 1;

export const SENSOR_ID_PATTERN = /^[a-zA-Z0-9_.:-]{1,64}$/;
export const METRIC_NAME_PATTERN = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;

/**
 * Ids and names key objects on the device and in the cloud (`sampling[sensorId]`), so the names
 * of JavaScript's object model are refused: `__proto__` would change a prototype when written
 * and `constructor` names a function when read from an object that lacks it.
 */
const notReserved = (what: string) =>
  [(name: string) => !RESERVED_KEYS.has(name), `${what} must not be __proto__, constructor or prototype`] as const;

export const sensorIdSchema = z
  .string()
  .regex(SENSOR_ID_PATTERN, 'sensor id must be 1-64 characters of a-z A-Z 0-9 _ . : -')
  .refine(...notReserved('sensor id'));

export const metricNameSchema = z
  .string()
  .regex(METRIC_NAME_PATTERN, 'metric name must match [a-zA-Z][a-zA-Z0-9_]{0,63}')
  .refine(...notReserved('metric name'));

export const metricValueSchema = z.union([
  z.number().refine(Number.isFinite, 'metric must be a finite number'),
  z.boolean(),
]);

export const readingSchema = z.strictObject({
  /** Sensor id from the device config, for example `bme280` or `door`. */
  sensor: sensorIdSchema,
  /** Sample time, milliseconds since the Unix epoch (UTC). */
  ts: z.number().int().nonnegative(),
  /** Metric name → value, for example `{ "temperature": 21.5, "humidity": 40.1 }`. */
  metrics: recordOf(metricNameSchema, metricValueSchema).refine(
    (m) => Object.keys(m).length > 0,
    'a reading needs at least one metric',
  ),
});

export const telemetryBatchSchema = z.strictObject({
  v: z.literal(TELEMETRY_VERSION),
  thingName: z.string().refine(isValidThingName, 'invalid thing name'),
  /** Random id of this agent boot (UUID). */
  bootId: z.string().min(8).max(64),
  /** 1, 2, 3, ... per boot. */
  seq: z.number().int().positive(),
  /** Time the batch was sealed, ms since the epoch. */
  sealedAt: z.number().int().nonnegative(),
  readings: z.array(readingSchema).min(1).max(10_000),
});

export type Reading = z.infer<typeof readingSchema>;
export type MetricValue = z.infer<typeof metricValueSchema>;
export type TelemetryBatch = z.infer<typeof telemetryBatchSchema>;

/** Validates a decoded batch; returns every problem with its path. */
export function validateTelemetryBatch(input: unknown): Validation<TelemetryBatch> {
  return validateWith(telemetryBatchSchema, input);
}

export interface EncodedBatch {
  readonly json: string;
  readonly bytes: number;
}

/** Encodes a batch and checks it against IoT Core's message size limit. */
export function encodeTelemetryBatch(batch: TelemetryBatch): Validation<EncodedBatch> {
  const json = JSON.stringify(batch);
  const bytes = utf8Length(json);
  if (bytes > LIMITS.maxMessageBytes) return { ok: false, issues: [messageSizeIssue(bytes)] };
  return { ok: true, value: { json, bytes } };
}

/** The encoded size of one reading inside a batch's `readings` array, including its comma. */
export function readingWireBytes(reading: Reading): number {
  return utf8Length(JSON.stringify(reading)) + 1;
}

/** Bytes a batch takes without any readings (its envelope), for sizing batches before sealing. */
export function batchEnvelopeBytes(thingName: string, bootId: string, seq: number, sealedAt: number): number {
  return utf8Length(JSON.stringify({ v: TELEMETRY_VERSION, thingName, bootId, seq, sealedAt, readings: [] }));
}

/** The issue for a payload over IoT Core's message size limit. */
export function messageSizeIssue(bytes: number): Issue {
  return {
    path: '$',
    message: `payload is ${bytes} bytes; IoT Core accepts at most ${LIMITS.maxMessageBytes} bytes per message`,
  };
}

/** Device status, published retained on `pifleet/{thing}/status` (online on connect, offline as last will). */
export const statusMessageSchema = z.strictObject({
  thingName: z.string().refine(isValidThingName, 'invalid thing name'),
  state: z.enum(['online', 'offline']),
  bootId: z.string(),
  ts: z.number().int().nonnegative(),
  agentVersion: z.string().optional(),
  /** Present on the offline last will when the reason is known (e.g. `shutdown`); absent for an unexpected loss. */
  reason: z.string().optional(),
});
export type StatusMessage = z.infer<typeof statusMessageSchema>;
