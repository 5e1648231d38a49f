import { z } from 'zod';
import { formatPath, type Issue, recordOf, type Validation, validateWith } from './issues.js';
import { isJsonObject, RESERVED_KEYS, setOwn } from './json.js';
import { sensorIdSchema } from './telemetry.js';

/**
 * What a device accepts in `state.desired` and reports in `state.reported` of its classic shadow.
 *
 * Desired keys are validated one by one: a bad key is rejected with a reason while the good
 * keys around it still apply, so one typo never blocks a whole change.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const OUTPUT_ID_PATTERN = /^[a-zA-Z0-9_.:-]{1,64}$/;

/** Bounds a device enforces on settings it accepts from the cloud. */
export const STATE_BOUNDS = {
  samplingIntervalMs: { min: 100, max: 86_400_000 },
  batchMaxReadings: { min: 1, max: 10_000 },
  /** Upper bound stays under IoT Core's 128 KB message limit with room for the envelope. */
  batchMaxBytes: { min: 512, max: 120 * 1024 },
  batchMaxAgeMs: { min: 100, max: 3_600_000 },
} as const;

const intIn = (b: { min: number; max: number }, what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .min(b.min, `${what} must be at least ${b.min}`)
    .max(b.max, `${what} must be at most ${b.max}`);

export const batchSettingsSchema = z.strictObject({
  maxReadings: intIn(STATE_BOUNDS.batchMaxReadings, 'maxReadings').optional(),
  maxBytes: intIn(STATE_BOUNDS.batchMaxBytes, 'maxBytes').optional(),
  maxAgeMs: intIn(STATE_BOUNDS.batchMaxAgeMs, 'maxAgeMs').optional(),
});

export const samplingIntervalSchema = intIn(STATE_BOUNDS.samplingIntervalMs, 'sampling interval (ms)');
export const logLevelSchema = z.enum(LOG_LEVELS, { error: `log level must be one of ${LOG_LEVELS.join(', ')}` });
export const outputIdSchema = z
  .string()
  .regex(OUTPUT_ID_PATTERN, 'output id must be 1-64 characters of a-z A-Z 0-9 _ . : -')
  .refine((id) => !RESERVED_KEYS.has(id), 'output id must not be __proto__, constructor or prototype');

const outputStateSchema = z.boolean({ error: 'output state must be true (on) or false (off)' });

export const desiredStateSchema = z.strictObject({
  /** Sensor id → sampling interval in milliseconds. */
  sampling: recordOf(sensorIdSchema, samplingIntervalSchema).optional(),
  batch: batchSettingsSchema.optional(),
  /** Output id → on (true) or off (false). */
  outputs: recordOf(outputIdSchema, outputStateSchema).optional(),
  logLevel: logLevelSchema.optional(),
});
export type DesiredState = z.infer<typeof desiredStateSchema>;
export type BatchSettings = z.infer<typeof batchSettingsSchema>;

/** Validates a whole desired document, reporting every problem (used by the command API). */
export function validateDesiredState(input: unknown): Validation<DesiredState> {
  return validateWith(desiredStateSchema, input);
}

export interface RejectedDesired {
  /** Path of the rejected key, e.g. `sampling.bme280`. */
  readonly path: string;
  readonly value: unknown;
  readonly reason: string;
}

export interface DesiredSplit {
  /** Keys that passed validation, ready to apply. */
  readonly accepted: DesiredState;
  /** Keys that did not, each with its reason. */
  readonly rejected: readonly RejectedDesired[];
}

const isPlainObject: (v: unknown) => v is Record<string, unknown> = isJsonObject;

const BATCH_FIELDS = batchSettingsSchema.shape;

/**
 * Splits a desired (or delta) document into the leaves that are valid and the ones that are
 * not. `null` leaves (a cleared desired key) are ignored. Unknown keys are rejected.
 */
export function splitDesired(input: unknown): DesiredSplit {
  const accepted: {
    sampling?: Record<string, number>;
    batch?: BatchSettings;
    outputs?: Record<string, boolean>;
    logLevel?: LogLevel;
  } = {};
  const rejected: RejectedDesired[] = [];
  const reject = (path: PropertyKey[], value: unknown, reason: string) =>
    rejected.push({ path: formatPath(path), value, reason });

  if (!isPlainObject(input)) {
    reject([], input, 'desired state must be an object');
    return { accepted, rejected };
  }
  const checkLeaf = <T>(schema: z.ZodType<T>, path: PropertyKey[], value: unknown): T | undefined => {
    const r = schema.safeParse(value);
    if (r.success) return r.data;
    reject(path, value, r.error.issues[0]?.message ?? 'invalid value');
    return undefined;
  };
  const mapOf = <T>(
    key: string,
    keySchema: z.ZodType<string>,
    valueSchema: z.ZodType<T>,
    value: unknown,
  ): Record<string, T> | undefined => {
    if (!isPlainObject(value)) {
      reject([key], value, `${key} must be an object`);
      return undefined;
    }
    const out: Record<string, T> = {};
    for (const [id, v] of Object.entries(value)) {
      if (v === null) continue;
      const idCheck = keySchema.safeParse(id);
      if (!idCheck.success) {
        reject([key, id], v, `invalid id ${JSON.stringify(id)}: ${idCheck.error.issues[0]?.message ?? 'not accepted'}`);
        continue;
      }
      const ok = checkLeaf(valueSchema, [key, id], v);
      if (ok !== undefined) setOwn(out, id, ok);
    }
    return Object.keys(out).length > 0 ? out : undefined;
  };

  for (const [key, value] of Object.entries(input)) {
    if (value === null) continue;
    switch (key) {
      case 'sampling': {
        const m = mapOf(key, sensorIdSchema, samplingIntervalSchema, value);
        if (m) accepted.sampling = m;
        break;
      }
      case 'outputs': {
        const m = mapOf(key, outputIdSchema, outputStateSchema, value);
        if (m) accepted.outputs = m;
        break;
      }
      case 'batch': {
        if (!isPlainObject(value)) {
          reject([key], value, 'batch must be an object');
          break;
        }
        const batch: { maxReadings?: number; maxBytes?: number; maxAgeMs?: number } = {};
        for (const [field, v] of Object.entries(value)) {
          if (v === null) continue;
          // Own keys only: `shape.constructor` is Object itself, and used to crash this loop.
          const fieldSchema = Object.hasOwn(BATCH_FIELDS, field)
            ? BATCH_FIELDS[field as keyof typeof BATCH_FIELDS]
            : undefined;
          if (fieldSchema === undefined) {
            reject([key, field], v, `unknown batch setting; expected maxReadings, maxBytes or maxAgeMs`);
            continue;
          }
          const ok = checkLeaf(fieldSchema.unwrap(), [key, field], v);
          if (ok !== undefined) batch[field as keyof typeof batch] = ok;
        }
        if (Object.keys(batch).length > 0) accepted.batch = batch;
        break;
      }
      case 'logLevel': {
        const ok = checkLeaf(logLevelSchema, [key], value);
        if (ok !== undefined) accepted.logLevel = ok;
        break;
      }
      default:
        reject([key], value, 'unknown desired key; expected sampling, batch, outputs or logLevel');
    }
  }
  return { accepted, rejected };
}

export const sensorReportSchema = z.strictObject({
  driver: z.string(),
  healthy: z.boolean(),
  intervalMs: z.number().int().positive(),
  lastError: z.string().optional(),
  errors: z.number().int().nonnegative().optional(),
});

export const outboxReportSchema = z.strictObject({
  /** Batches waiting for an acknowledgement. */
  depth: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** Batches dropped because the disk bound was reached, since the outbox was created. */
  dropped: z.number().int().nonnegative(),
  droppedReadings: z.number().int().nonnegative(),
  /** Batches acknowledged by the broker since this boot. */
  sent: z.number().int().nonnegative(),
});

/**
 * Bounds of `reported.health`: every number is bounded, so a report that passes can neither grow
 * the shadow document nor carry a value no Pi produces (a temperature of 10⁹ is a parsing bug).
 */
export const HEALTH_BOUNDS = {
  /** The most acknowledgements the publish latency is summarised over (the agent's window). */
  latencyWindow: 256,
  /** A publish not acknowledged in an hour is not a latency any more. */
  latencyMsMax: 3_600_000,
  /** 16 TiB in MiB: far past any Pi, small enough to stay a plain integer. */
  mibMax: 16 * 1024 * 1024,
  /** What a SoC thermal zone can report (the kernel's millidegrees, in °C). */
  tempC: { min: -60, max: 150 },
  loadMax: 10_000,
} as const;

const percent = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .min(0, `${what} must be at least 0`)
    .max(100, `${what} must be at most 100`);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const mib = z.number().int().nonnegative().max(HEALTH_BOUNDS.mibMax);
const load = z.number().nonnegative().max(HEALTH_BOUNDS.loadMax);
const latencyMs = z.number().int().nonnegative().max(HEALTH_BOUNDS.latencyMsMax);

/**
 * The agent's health (`reported.health`), sampled every `health.intervalSeconds` and rounded. A
 * section or field the device cannot measure (no thermal zone, not Linux, no publish yet) is
 * omitted, never reported as 0.
 */
export const healthReportSchema = z.strictObject({
  /** When the agent took this sample, ms since the epoch. */
  sampledAt: count,
  /** The whole device. */
  host: z
    .strictObject({
      /** CPU busy over all cores between the last two samples, %. */
      cpuPct: percent('host.cpuPct').optional(),
      /** Load averages over 1, 5 and 15 minutes (runnable tasks; 4.0 fills a 4-core Pi). */
      load1: load.optional(),
      load5: load.optional(),
      load15: load.optional(),
      memTotalMiB: mib.optional(),
      /** What the kernel could give to a new process without swapping (MemAvailable). */
      memAvailableMiB: mib.optional(),
      /** SoC temperature (the `cpu-thermal` zone on a Pi), °C. */
      tempC: z.number().min(HEALTH_BOUNDS.tempC.min).max(HEALTH_BOUNDS.tempC.max).optional(),
      /** Seconds since the device booted. */
      uptimeS: count.optional(),
    })
    .refine(
      (h) => h.memTotalMiB === undefined || h.memAvailableMiB === undefined || h.memAvailableMiB <= h.memTotalMiB,
      { message: 'memAvailableMiB must not exceed memTotalMiB', path: ['memAvailableMiB'] },
    )
    .optional(),
  /** The agent's own process. */
  process: z
    .strictObject({
      /** Share of the whole device's CPU time (all cores) the agent used between the last two samples, %. */
      cpuPct: percent('process.cpuPct').optional(),
      /** Resident memory, MiB. */
      rssMiB: mib.optional(),
    })
    .optional(),
  /** The MQTT connection. */
  connection: z.strictObject({
    /** Connections made again after the first since the agent started. */
    reconnects: count,
    /** Seconds the current connection has been up (absent while disconnected). */
    connectedS: count.optional(),
    /**
     * Time from a telemetry batch's PUBLISH to its PUBACK over the last acknowledgements (at most
     * {@link HEALTH_BOUNDS.latencyWindow}): the latest, the median and the 99th percentile, ms.
     */
    publishLatencyMs: z
      .strictObject({
        last: latencyMs,
        p50: latencyMs,
        p99: latencyMs,
        samples: z.number().int().min(1).max(HEALTH_BOUNDS.latencyWindow),
      })
      .refine((l) => l.p50 <= l.p99, { message: 'p50 must not exceed p99', path: ['p50'] })
      .optional(),
  }),
});
export type HealthReport = z.infer<typeof healthReportSchema>;

export function validateHealthReport(input: unknown): Validation<HealthReport> {
  return validateWith(healthReportSchema, input);
}

export const reportedStateSchema = z.strictObject({
  agent: z.strictObject({
    version: z.string(),
    bootId: z.string(),
    startedAt: z.number().int().nonnegative(),
    uptimeS: z.number().nonnegative(),
  }),
  sensors: recordOf(sensorIdSchema, sensorReportSchema),
  outputs: recordOf(outputIdSchema, z.boolean()),
  sampling: recordOf(sensorIdSchema, z.number().int().positive()),
  batch: z.strictObject({
    maxReadings: z.number().int().positive(),
    maxBytes: z.number().int().positive(),
    maxAgeMs: z.number().int().positive(),
  }),
  logLevel: logLevelSchema,
  outbox: outboxReportSchema,
  /** Rejected desired keys by path, with the value and the reason; `null` clears earlier rejections. */
  rejected: recordOf(z.string(), z.strictObject({ value: z.unknown(), reason: z.string() }))
    .nullable()
    .optional(),
  /**
   * While the broker refuses the telemetry topic (MQTT 5 reason code, e.g. NOT_AUTHORIZED: the
   * policy does not allow iot:Publish on it): why, since when, and what to fix; the batches wait in
   * the outbox. `null` clears it once a publish is accepted again.
   */
  telemetry: z
    .strictObject({
      blocked: z.string(),
      reasonCode: z.number().int().min(0x80).max(0xff),
      topic: z.string(),
      since: z.number().int().nonnegative(),
      fix: z.string(),
    })
    .nullable()
    .optional(),
  /**
   * Requests of the agent refused for an IoT Core quota since it started (present once any is not
   * zero): telemetry publishes refused (MQTT 5 PUBACK 0x97/0x96) or not acknowledged in time (how a
   * throttled publish shows on 3.1.1), connects refused or ended for a quota, shadow requests
   * answered 429. Nothing is dropped for them: the agent backs off and retries.
   */
  throttled: z
    .strictObject({
      publishes: z.number().int().nonnegative(),
      unacknowledged: z.number().int().nonnegative(),
      connects: z.number().int().nonnegative(),
      shadow: z.number().int().nonnegative(),
    })
    .optional(),
  /** Host, process and connection health, once the agent has sampled it (`health.intervalSeconds`). */
  health: healthReportSchema.optional(),
});
export type ReportedState = z.infer<typeof reportedStateSchema>;
export type SensorReport = z.infer<typeof sensorReportSchema>;
export type OutboxReport = z.infer<typeof outboxReportSchema>;

export function validateReportedState(input: unknown): Validation<ReportedState> {
  return validateWith(reportedStateSchema, input);
}

/** Turns a list of rejections into the `reported.rejected` map. */
export function rejectionsToReported(
  rejected: readonly RejectedDesired[],
): Record<string, { value: unknown; reason: string }> | null {
  if (rejected.length === 0) return null;
  const out: Record<string, { value: unknown; reason: string }> = {};
  // A path is outside input (a desired key): `__proto__` stays an own key.
  for (const r of rejected) setOwn(out, r.path, { value: r.value, reason: r.reason });
  return out;
}

export type { Issue };

/**
 * The desired-state schema as JSON Schema (draft 2020-12), for clients that validate before they
 * send (the web console); the same bounds and patterns as {@link validateDesiredState}.
 */
export function desiredStateJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(desiredStateSchema) as Record<string, unknown>;
}
