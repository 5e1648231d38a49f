import { hex, SensorError, type SensorErrorCode } from '../hardware/errors.js';
import { type Clock, sleep } from '../ports/clock.js';
import type { I2cBus } from '../ports/i2c.js';
import type { Metrics, Sensor } from './types.js';

/** BH1750FVI opcodes (ROHM datasheet, "Instruction Set Architecture"). It has no registers. */
export const BH1750 = {
  POWER_DOWN: 0x00,
  POWER_ON: 0x01,
  RESET: 0x07,
  ONE_TIME_H_RES: 0x20,
  /** Max measurement time in H-resolution mode (typ. 120 ms). */
  H_RES_MAX_MS: 180,
  /** lux = count / 1.2 at the default measurement time (MTreg 69). */
  COUNTS_PER_LUX: 1.2,
} as const;

export interface Bh1750Options {
  readonly id: string;
  readonly bus: I2cBus;
  readonly clock: Clock;
  /** 0x23 (ADDR low, default) or 0x5C. */
  readonly address?: number;
}

/**
 * ROHM BH1750 ambient light sensor: each `read()` powers it on, starts a one-time
 * H-resolution measurement, waits the datasheet maximum (180 ms) and reads the 16-bit
 * big-endian count; `illuminance` = count / 1.2 lux. A saturated count (0xFFFF) is
 * SENSOR_OUT_OF_RANGE. SensorError `register` carries the opcode involved.
 */
export function createBh1750(options: Bh1750Options): Sensor {
  const address = options.address ?? 0x23;
  const { bus, clock, id } = options;
  let ready = false;

  const fail = (code: SensorErrorCode, message: string, register: number, extra: Record<string, unknown> = {}) =>
    new SensorError(code, `bh1750 ${id} at ${hex(address)} on bus ${bus.busNumber}: ${message}`, {
      sensor: id,
      driver: 'bh1750',
      bus: bus.busNumber,
      address,
      register,
      ...extra,
    });

  const command = (opcode: number) => bus.i2cWrite(address, 1, Buffer.from([opcode]));

  return {
    id,
    driver: 'bh1750',
    async init() {
      ready = false;
      await command(BH1750.POWER_ON);
      await command(BH1750.RESET);
      ready = true;
    },
    async read(): Promise<Metrics> {
      if (!ready) throw fail('SENSOR_NOT_READY', 'read before init', BH1750.POWER_ON);
      await command(BH1750.POWER_ON);
      await command(BH1750.ONE_TIME_H_RES);
      await sleep(clock, BH1750.H_RES_MAX_MS);
      const buf = Buffer.alloc(2);
      const { bytesRead } = await bus.i2cRead(address, 2, buf);
      if (bytesRead !== 2) throw fail('SENSOR_NOT_READY', `short read (${bytesRead} bytes)`, BH1750.ONE_TIME_H_RES);
      const count = buf.readUInt16BE(0);
      if (count === 0xffff) {
        throw fail('SENSOR_OUT_OF_RANGE', 'light sensor saturated', BH1750.ONE_TIME_H_RES, { raw: count });
      }
      return { illuminance: Math.round((count / BH1750.COUNTS_PER_LUX) * 100) / 100 };
    },
    async close() {
      ready = false;
    },
  };
}
