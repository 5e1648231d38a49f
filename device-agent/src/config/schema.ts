import {
  isJsonObject,
  isValidClientId,
  isValidThingName,
  LOG_LEVELS,
  REGISTER_THING_LIMITS,
  RESERVED_KEYS,
  releasePublicKeyProblem,
  STATE_BOUNDS,
  setOwn,
} from '@pifleet/protocol';
import { z } from 'zod';
import {
  ads1115SpecSchema,
  bh1750SpecSchema,
  bme280SpecSchema,
  digitalInputSpecSchema,
  type HardwareSpecInput,
  outputSpecSchema,
  type SensorSpec,
} from '../hardware/spec.js';

/** Sensor drivers the agent knows; `digital-input` reads a GPIO line, the others sit on an I2C bus. */
export const SENSOR_DRIVERS = ['bme280', 'bh1750', 'ads1115', 'digital-input'] as const;
export type SensorDriverName = (typeof SENSOR_DRIVERS)[number];

const int = (what: string) => z.number({ error: `${what} must be a number` }).int(`${what} must be an integer`);
const intIn = (what: string, min: number, max: number) =>
  int(what).min(min, `${what} must be at least ${min}`).max(max, `${what} must be at most ${max}`);
const nonEmpty = (what: string) => z.string({ error: `${what} must be a string` }).min(1, `${what} must not be empty`);

/** Sampling interval added to each of the hardware layer's sensor specs. */
const sampling = {
  intervalMs: intIn('intervalMs', STATE_BOUNDS.samplingIntervalMs.min, STATE_BOUNDS.samplingIntervalMs.max).default(
    10_000,
  ),
};

/** Accepts I2C addresses written as hex strings ("0x76") as well as numbers. */
const hexAddress = (v: unknown) => {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const address = (v as { address?: unknown }).address;
    if (typeof address === 'string' && /^0x[0-9a-fA-F]{1,2}$/.test(address)) {
      return { ...v, address: Number.parseInt(address, 16) };
    }
  }
  return v;
};

/**
 * A sensor: the hardware layer's spec for its driver (`hardware/spec.ts`: bus, address, line,
 * oversampling, channels, debounce, …) plus the sampling interval.
 */
export const sensorConfigSchema = z.preprocess(
  hexAddress,
  z.discriminatedUnion(
    'driver',
    [
      bme280SpecSchema.extend(sampling),
      bh1750SpecSchema.extend(sampling),
      ads1115SpecSchema.extend(sampling),
      digitalInputSpecSchema.extend(sampling),
    ],
    { error: `driver must be one of ${SENSOR_DRIVERS.join(', ')}` },
  ),
);

/** An on/off output (`digital-output`: line, activeLow, initial). */
export const outputConfigSchema = outputSpecSchema;

export const batchConfigSchema = z.strictObject({
  maxReadings: intIn('maxReadings', STATE_BOUNDS.batchMaxReadings.min, STATE_BOUNDS.batchMaxReadings.max).default(500),
  maxBytes: intIn('maxBytes', STATE_BOUNDS.batchMaxBytes.min, STATE_BOUNDS.batchMaxBytes.max).default(64 * 1024),
  maxAgeMs: intIn('maxAgeMs', STATE_BOUNDS.batchMaxAgeMs.min, STATE_BOUNDS.batchMaxAgeMs.max).default(10_000),
});

export const telemetryConfigSchema = z.strictObject({
  /**
   * The batch format the agent publishes: `v2` (default: one group per sensor, metric names once,
   * times as offsets; about a third of v1's bytes at 10 readings per message) or `v1` (`readings[]`,
   * for consumers that read the raw topic and know only v1). The cloud stores both alike.
   */
  encoding: z.enum(['v2', 'v1'], { error: 'telemetry.encoding must be "v2" or "v1"' }).default('v2'),
});

export const outboxConfigSchema = z.strictObject({
  path: nonEmpty('path').default('/var/lib/pifleet/outbox.db'),
  /** Disk bound for stored batches (payload bytes); past it the oldest batches are dropped and counted. */
  maxBytes: intIn('maxBytes', 256 * 1024, 64 * 1024 ** 3).default(64 * 1024 ** 2),
  /** SQLite `synchronous` in WAL mode: `full` survives power loss, `normal` survives a process crash. */
  synchronous: z.enum(['full', 'normal']).default('full'),
  /**
   * `synchronous` of the journal write of each sampled reading: `normal` and `off` survive a process
   * kill without an fsync per reading (power loss: the readings since the last seal); `full`
   * fsyncs every reading.
   */
  readingSync: z
    .enum(['normal', 'full', 'off'], { error: 'outbox.readingSync must be "normal", "full" or "off"' })
    .default('normal'),
});

export const mqttConfigSchema = z.strictObject({
  /**
   * `5` (default: AWS IoT Core and the local IoT Core both serve it); `3.1.1` on request. On 3.1.1 a
   * refused publish closes the connection (no reason codes), so the agent cannot tell it from a
   * network fault.
   */
  protocol: z.enum(['5', '3.1.1'], { error: 'mqtt.protocol must be "5" or "3.1.1"' }).default('5'),
  /** Defaults to the thing name (what the recommended IoT policy expects). */
  clientId: z.string().refine(isValidClientId, 'invalid MQTT client id').optional(),
  keepAliveS: intIn('keepAliveS', 30, 1200).default(60),
  reconnectMinMs: intIn('reconnectMinMs', 100, 600_000).default(1_000),
  reconnectMaxMs: intIn('reconnectMaxMs', 1_000, 3_600_000).default(120_000),
});

/**
 * The agent's telemetry shares its connection with its shadow requests and status messages, so its
 * caps stay well under IoT Core's per-connection quotas ("AWS IoT Core endpoints and quotas": 100
 * publishes and 512 KiB per second per connection) instead of at them.
 */
const PUBLISH_BOUNDS = {
  maxPerSecond: 50,
  maxBytesPerSecond: 384 * 1024,
} as const;

export const publishConfigSchema = z.strictObject({
  /** QoS 1 publishes awaiting PUBACK at once. */
  maxInFlight: intIn('maxInFlight', 1, 64).default(4),
  /** Telemetry publishes per second. */
  maxPerSecond: int('maxPerSecond')
    .min(1, 'maxPerSecond must be at least 1')
    .max(
      PUBLISH_BOUNDS.maxPerSecond,
      `maxPerSecond must be at most ${PUBLISH_BOUNDS.maxPerSecond}: AWS IoT Core allows 100 publishes per second per connection (quota publishesPerSecondPerConnection), and the shadow and status messages share the connection`,
    )
    .default(10),
  /**
   * Telemetry payload bytes per second. The publisher's bursts are one largest batch (120 KiB), so
   * the most in any one-second window is this + 120 KiB: at the cap, 504 KiB, under the 512 KiB/s
   * quota. The default lets full default batches (64 KiB) through at 4 a second instead of 10.
   */
  maxBytesPerSecond: int('maxBytesPerSecond')
    .min(
      STATE_BOUNDS.batchMaxBytes.max,
      `maxBytesPerSecond must be at least ${STATE_BOUNDS.batchMaxBytes.max} (one batch of the largest size)`,
    )
    .max(
      PUBLISH_BOUNDS.maxBytesPerSecond,
      `maxBytesPerSecond must be at most ${PUBLISH_BOUNDS.maxBytesPerSecond}: AWS IoT Core allows 512 KiB of publishes per second per connection (quota publishBytesPerSecondPerConnection), and the shadow and status messages share the connection`,
    )
    .default(256 * 1024),
  ackTimeoutMs: intIn('ackTimeoutMs', 1_000, 600_000).default(30_000),
  /**
   * While the broker refuses the telemetry topic (MQTT 5 NOT_AUTHORIZED: the policy), the oldest
   * batch is offered again this often (the others wait in the outbox); a batch refused by itself is
   * held back this long.
   */
  refusedRetryMs: intIn('refusedRetryMs', 1_000, 3_600_000).default(60_000),
});

export const shadowConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  requestTimeoutMs: intIn('requestTimeoutMs', 1_000, 120_000).default(10_000),
  /** How often the reported state is refreshed (outbox depth, uptime) while nothing else changes. */
  reportIntervalMs: intIn('reportIntervalMs', 10_000, 86_400_000).default(300_000),
});

/**
 * Health (`reported.health`: host CPU, memory, temperature, the agent's CPU and RSS, the connection's
 * reconnects and publish latency): sampled every `intervalSeconds`, 0 turns it off. A minute is
 * frequent enough to see a Pi heat up or a link degrade, and the samples cost no shadow update
 * unless a value moves past its threshold (`core/health.ts`); intervals of a few seconds are meant
 * for tests.
 */
export const healthConfigSchema = z.strictObject({
  intervalSeconds: int('intervalSeconds')
    .min(0, 'intervalSeconds must be 0 (health off) or a number of seconds')
    .max(86_400, 'intervalSeconds must be at most 86400 (a day)')
    .default(60),
});

/**
 * Jobs (IoT Jobs through the device SDK's jobs client): whether the agent runs them at all, and
 * whether a `pifleet.reboot` job may reboot the device (off by default: a reboot job is REJECTED
 * with the reason unless the device's own config allows it).
 */
export const jobsConfigSchema = z.strictObject({
  enabled: z.boolean({ error: 'jobs.enabled must be true or false' }).default(true),
  allowReboot: z.boolean({ error: 'jobs.allowReboot must be true or false' }).default(false),
  /** Timeout of each jobs request (start-next, describe, update); a timed-out update is retried. */
  requestTimeoutMs: intIn('requestTimeoutMs', 1_000, 120_000).default(10_000),
});

/** A PEM public key a release may be signed with: Ed25519 or ECDSA P-256 (SPKI). */
const releasePublicKey = z.string({ error: 'a public key must be a PEM string' }).check((ctx) => {
  const problem = releasePublicKeyProblem(ctx.value);
  if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem });
});

/**
 * Agent updates (`pifleet.agent-update` jobs): the keys a release must be signed with (none: every
 * update is REJECTED), and how long the new agent has after its restart to be healthy (connected,
 * shadow synced, sensors read) before it is rolled back.
 */
export const updateConfigSchema = z.strictObject({
  publicKeys: z.array(releasePublicKey, { error: 'update.publicKeys must be a list of PEM strings' }).default([]),
  healthDeadlineSeconds: intIn('healthDeadlineSeconds', 10, 3_600).default(120),
});

/** Provisioning template names (CreateProvisioningTemplate): 1–36 characters of `[0-9A-Za-z_-]`. */
const TEMPLATE_NAME = /^[0-9A-Za-z_-]{1,36}$/;

/** At most this many template parameters: the device's facts and a few of the operator's. */
export const MAX_PROVISIONING_PARAMETERS = 64;

/**
 * Why a template parameters object is not one (strings only, keys and values within RegisterThing's
 * limits, no key that could reach a prototype); undefined when it is. Checked on the parsed JSON
 * itself, not through `z.record`, which drops a `__proto__` key without a word.
 */
function parametersProblem(value: unknown): { path: string[]; message: string } | undefined {
  if (!isJsonObject(value)) return { path: [], message: 'provisioning.parameters must be an object of strings' };
  const keys = Object.keys(value);
  if (keys.length > MAX_PROVISIONING_PARAMETERS)
    return { path: [], message: `at most ${MAX_PROVISIONING_PARAMETERS} parameters (${keys.length} given)` };
  for (const key of keys) {
    if (RESERVED_KEYS.has(key)) return { path: [key], message: `${JSON.stringify(key)} is not a parameter name` };
    if (key.length === 0 || key.length > REGISTER_THING_LIMITS.maxKeyChars)
      return { path: [key], message: `a parameter name has 1 to ${REGISTER_THING_LIMITS.maxKeyChars} characters` };
    const v = value[key];
    if (typeof v !== 'string') return { path: [key], message: 'a parameter value must be a string' };
    if (v.length > REGISTER_THING_LIMITS.maxValueChars)
      return {
        path: [key],
        message: `a parameter value has at most ${REGISTER_THING_LIMITS.maxValueChars} characters`,
      };
  }
  return undefined;
}

/** Template parameters: a null-prototype copy of the checked object (a `__proto__` key is refused before). */
const templateParameters = z
  .unknown()
  .check((ctx) => {
    const problem = parametersProblem(ctx.value);
    if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, path: problem.path, message: problem.message });
  })
  .transform((value) => {
    const out: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(value as Record<string, string>)) setOwn(out, k, v);
    return out as Readonly<Record<string, string>>;
  });

/**
 * Fleet provisioning by claim (`pifleet-agent provision`, and `run` on a device not provisioned
 * yet): the template to register through, the claim certificate every device of the image shares,
 * how the device gets its own key (`csr`: made on the device, only a CSR leaves it; `create-keys`:
 * AWS IoT makes the key and sends it back), and template parameters that override the facts the
 * agent reads from the device (SerialNumber, Model, MacAddress). Once provisioned (certFile exists
 * and thingName is set) the section is kept and ignored.
 */
export const provisioningConfigSchema = z.strictObject({
  templateName: z
    .string({ error: 'provisioning.templateName is required' })
    .regex(TEMPLATE_NAME, 'a template name is 1-36 characters of a-z A-Z 0-9 _ -'),
  claimCertFile: nonEmpty('provisioning.claimCertFile'),
  claimKeyFile: nonEmpty('provisioning.claimKeyFile'),
  method: z
    .enum(['csr', 'create-keys'], { error: 'provisioning.method must be "csr" or "create-keys"' })
    .default('csr'),
  parameters: templateParameters.optional(),
  /** How long provisioning may take in all (connecting, retries), in seconds. */
  timeoutSeconds: intIn('timeoutSeconds', 10, 3_600).default(300),
});

export type ProvisioningConfig = z.output<typeof provisioningConfigSchema>;

export const agentConfigSchema = z
  .strictObject({
    thingName: z.string({ error: 'thingName is required' }).refine(isValidThingName, 'invalid thing name'),
    endpoint: nonEmpty('endpoint'),
    port: intIn('port', 1, 65_535).default(8883),
    certFile: nonEmpty('certFile'),
    keyFile: nonEmpty('keyFile'),
    /** CA bundle to trust (Amazon Root CA 1, or the local IoT Core's CA); the system store when absent. */
    caFile: nonEmpty('caFile').optional(),
    mqtt: mqttConfigSchema.prefault({}),
    sensors: z.array(sensorConfigSchema).default([]),
    outputs: z.array(outputConfigSchema).default([]),
    batch: batchConfigSchema.prefault({}),
    telemetry: telemetryConfigSchema.prefault({}),
    outbox: outboxConfigSchema.prefault({}),
    publish: publishConfigSchema.prefault({}),
    shadow: shadowConfigSchema.prefault({}),
    health: healthConfigSchema.prefault({}),
    jobs: jobsConfigSchema.prefault({}),
    update: updateConfigSchema.prefault({}),
    logLevel: z.enum(LOG_LEVELS, { error: `logLevel must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    /** `real`: onoff + i2c-bus on a Pi; `simulated`: ports supplied by the simulator; `none`: no hardware. */
    hardware: z
      .enum(['real', 'simulated', 'none'], { error: 'hardware must be "real", "simulated" or "none"' })
      .default('real'),
    /** Default I2C bus for sensors that name none (`/dev/i2c-1` on the Pi header). */
    i2cBus: intIn('i2cBus', 0, 31).default(1),
    /** Bounded wait for in-flight acknowledgements on SIGTERM. */
    shutdownTimeoutMs: intIn('shutdownTimeoutMs', 0, 60_000).default(5_000),
    provisioning: provisioningConfigSchema.optional(),
  })
  .superRefine((c, ctx) => {
    const dup = (list: readonly { id: string }[], key: string) => {
      const seen = new Set<string>();
      list.forEach((item, i) => {
        if (seen.has(item.id))
          ctx.addIssue({ code: 'custom', path: [key, i, 'id'], message: `duplicate id ${JSON.stringify(item.id)}` });
        seen.add(item.id);
      });
    };
    dup(c.sensors, 'sensors');
    dup(c.outputs, 'outputs');
    if (c.mqtt.reconnectMaxMs < c.mqtt.reconnectMinMs)
      ctx.addIssue({ code: 'custom', path: ['mqtt', 'reconnectMaxMs'], message: 'must be ≥ mqtt.reconnectMinMs' });
  });

export type AgentConfigInput = z.input<typeof agentConfigSchema>;
type Parsed = z.output<typeof agentConfigSchema>;
export type SensorConfig = Parsed['sensors'][number];
export type OutputConfig = Parsed['outputs'][number];
export type BatchConfig = Parsed['batch'];
/** The validated, defaulted and frozen agent configuration; `mqtt.clientId` is always set. */
export type AgentConfig = DeepReadonly<Omit<Parsed, 'mqtt'> & { mqtt: Parsed['mqtt'] & { clientId: string } }>;

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The hardware layer's spec (`createHardware`) for this config. */
export function toHardwareSpec(config: AgentConfig): HardwareSpecInput {
  const mode =
    config.hardware === 'real' && config.sensors.length === 0 && config.outputs.length === 0 ? 'none' : config.hardware;
  return {
    mode,
    i2cBus: config.i2cBus,
    sensors: config.sensors.map(({ intervalMs: _interval, ...spec }) => structuredClone(spec) as SensorSpec),
    outputs: config.outputs.map((o) => ({ ...o })),
  };
}
