import { METRIC_NAME_PATTERN, sensorIdSchema } from '@pifleet/protocol';
import { z } from 'zod';

/**
 * The `hardware` section of the agent config: which adapters to use and which sensors and
 * outputs are attached. Lines are BCM numbers; addresses are 7-bit I2C addresses.
 * The config loader embeds {@link hardwareSpecSchema}; `createHardware` consumes the result.
 */

const line = z.number().int().min(0, 'BCM line must be 0–27').max(27, 'BCM line must be 0–27 (header GPIOs)');
const bus = z.number().int().min(0).max(31);
const metricName = z.string().regex(METRIC_NAME_PATTERN, 'metric name must match [a-zA-Z][a-zA-Z0-9_]{0,63}');
const oversampling = z.literal([0, 1, 2, 4, 8, 16]);

export const bme280SpecSchema = z.strictObject({
  id: sensorIdSchema,
  driver: z.literal('bme280'),
  bus: bus.optional(),
  address: z.literal([0x76, 0x77]).default(0x76),
  oversampling: z
    .strictObject({
      temperature: oversampling.optional(),
      pressure: oversampling.optional(),
      humidity: oversampling.optional(),
    })
    .optional(),
  filter: z.literal([0, 2, 4, 8, 16]).optional(),
  /** Consecutive identical readings before SENSOR_STUCK (default 20; 0 disables). */
  stuckAfter: z.number().int().min(0).max(10_000).default(20),
});

export const ads1115SpecSchema = z.strictObject({
  id: sensorIdSchema,
  driver: z.literal('ads1115'),
  bus: bus.optional(),
  address: z.literal([0x48, 0x49, 0x4a, 0x4b]).default(0x48),
  rate: z.literal([8, 16, 32, 64, 128, 250, 475, 860]).optional(),
  channels: z
    .array(
      z.strictObject({
        name: metricName,
        input: z.union([z.literal([0, 1, 2, 3]), z.enum(['diff01', 'diff03', 'diff13', 'diff23'])]),
        range: z.literal([6.144, 4.096, 2.048, 1.024, 0.512, 0.256]).optional(),
        scale: z.number().finite().optional(),
        offset: z.number().finite().optional(),
      }),
    )
    .min(1, 'an ADS1115 needs at least one channel')
    .max(8),
  stuckAfter: z.number().int().min(0).max(10_000).default(0),
});

export const bh1750SpecSchema = z.strictObject({
  id: sensorIdSchema,
  driver: z.literal('bh1750'),
  bus: bus.optional(),
  address: z.literal([0x23, 0x5c]).default(0x23),
  stuckAfter: z.number().int().min(0).max(10_000).default(0),
});

export const digitalInputSpecSchema = z.strictObject({
  id: sensorIdSchema,
  driver: z.literal('digital-input'),
  line,
  debounceMs: z.number().int().min(0).max(10_000).default(20),
  activeLow: z.boolean().default(false),
});

export const sensorSpecSchema = z.discriminatedUnion('driver', [
  bme280SpecSchema,
  ads1115SpecSchema,
  bh1750SpecSchema,
  digitalInputSpecSchema,
]);

export const outputSpecSchema = z.strictObject({
  id: sensorIdSchema,
  driver: z.literal('digital-output').default('digital-output'),
  line,
  activeLow: z.boolean().default(false),
  initial: z.boolean().default(false),
});

export const hardwareSpecSchema = z
  .strictObject({
    /**
     * `real`: onoff + i2c-bus on a Raspberry Pi. `simulated`: ports supplied by the caller
     * (the simulator). `none`: no hardware (sensors and outputs must be empty).
     */
    mode: z.enum(['real', 'simulated', 'none']).default('none'),
    gpio: z
      .strictObject({
        /** Where sysfs GPIO lives; tests point this at a fake tree. */
        sysfsRoot: z.string().min(1).optional(),
        /** Use this chip base instead of resolving it from sysfs (sysfs number = base + BCM). */
        base: z.number().int().min(0).optional(),
      })
      .default({}),
    /** Default I2C bus for sensors that name none (`/dev/i2c-1` is the header's SDA/SCL). */
    i2cBus: bus.default(1),
    sensors: z.array(sensorSpecSchema).default([]),
    outputs: z.array(outputSpecSchema).default([]),
    backoff: z
      .strictObject({
        initialMs: z.number().int().min(10).max(3_600_000).optional(),
        maxMs: z.number().int().min(10).max(86_400_000).optional(),
        factor: z.number().min(1).max(10).optional(),
      })
      .default({}),
  })
  .superRefine((spec, ctx) => {
    const ids = new Set<string>();
    const lines = new Map<number, string>();
    const addresses = new Map<string, string>();
    const all = [...spec.sensors, ...spec.outputs];
    all.forEach((item, i) => {
      const path = i < spec.sensors.length ? ['sensors', i] : ['outputs', i - spec.sensors.length];
      if (ids.has(item.id)) ctx.addIssue({ code: 'custom', path: [...path, 'id'], message: `duplicate id ${item.id}` });
      ids.add(item.id);
      if ('line' in item) {
        const other = lines.get(item.line);
        if (other)
          ctx.addIssue({
            code: 'custom',
            path: [...path, 'line'],
            message: `BCM ${item.line} already used by ${other}`,
          });
        lines.set(item.line, item.id);
      }
      if ('address' in item) {
        const key = `${item.bus ?? spec.i2cBus}:${item.address}`;
        const other = addresses.get(key);
        if (other) {
          ctx.addIssue({
            code: 'custom',
            path: [...path, 'address'],
            message: `I2C address 0x${item.address.toString(16)} on bus ${item.bus ?? spec.i2cBus} already used by ${other}`,
          });
        }
        addresses.set(key, item.id);
      }
    });
    if (spec.mode === 'none' && all.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['mode'], message: "mode 'none' cannot have sensors or outputs" });
    }
  });

export type HardwareSpec = z.infer<typeof hardwareSpecSchema>;
export type HardwareSpecInput = z.input<typeof hardwareSpecSchema>;
export type SensorSpec = z.infer<typeof sensorSpecSchema>;
export type OutputSpec = z.infer<typeof outputSpecSchema>;
