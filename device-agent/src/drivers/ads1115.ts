import { hex, SensorError, type SensorErrorCode } from '../hardware/errors.js';
import { type Clock, sleep } from '../ports/clock.js';
import type { I2cBus } from '../ports/i2c.js';
import type { Metrics, Sensor } from './types.js';

/** ADS1115 register pointers and config fields (TI SBAS444, section 8.6). */
export const ADS1115 = {
  REG_CONVERSION: 0x00,
  REG_CONFIG: 0x01,
  REG_LO_THRESH: 0x02,
  REG_HI_THRESH: 0x03,
  /** Config bit 15: write 1 to start a single conversion; reads 0 while converting. */
  OS: 0x8000,
  /** Config bit 8: single-shot / power-down mode. */
  MODE_SINGLE: 0x0100,
  /** COMP_QUE = 11: comparator disabled, ALERT/RDY high-Z. */
  COMP_DISABLE: 0x0003,
  /** Power-on reset value of the config register. */
  CONFIG_RESET: 0x8583,
} as const;

/** Input multiplexer: single-ended `0`–`3`, or a differential pair. MUX field value in brackets. */
export type Ads1115Input = 0 | 1 | 2 | 3 | 'diff01' | 'diff03' | 'diff13' | 'diff23';
const MUX: Readonly<Record<string, number>> = { diff01: 0, diff03: 1, diff13: 2, diff23: 3, 0: 4, 1: 5, 2: 6, 3: 7 };

/** Full-scale range in volts → PGA field. */
export type Ads1115Range = 6.144 | 4.096 | 2.048 | 1.024 | 0.512 | 0.256;
const PGA: Readonly<Record<string, number>> = { 6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5 };

/** Samples per second → DR field. */
export type Ads1115Rate = 8 | 16 | 32 | 64 | 128 | 250 | 475 | 860;
const DR: Readonly<Record<number, number>> = { 8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7 };

export interface Ads1115Channel {
  /** Metric name reported for this channel. */
  readonly name: string;
  readonly input: Ads1115Input;
  /** Full-scale range (programmable gain), default ±4.096 V. */
  readonly range?: Ads1115Range;
  /** Reported value = volts · scale + offset (defaults 1 and 0). */
  readonly scale?: number;
  readonly offset?: number;
}

export interface Ads1115Options {
  readonly id: string;
  readonly bus: I2cBus;
  readonly clock: Clock;
  /** 0x48 (ADDR to GND, default), 0x49, 0x4A, 0x4B. */
  readonly address?: number;
  readonly channels: readonly Ads1115Channel[];
  /** Data rate, default 128 SPS. */
  readonly rate?: Ads1115Rate;
}

/** Config word for one single-shot conversion. */
export function ads1115Config(input: Ads1115Input, range: Ads1115Range, rate: Ads1115Rate): number {
  return (
    ADS1115.OS |
    ((MUX[String(input)] ?? 4) << 12) |
    ((PGA[String(range)] ?? 1) << 9) |
    ADS1115.MODE_SINGLE |
    ((DR[rate] ?? 4) << 5) |
    ADS1115.COMP_DISABLE
  );
}

/** Volts for a conversion code: the 16-bit two's complement result times FSR / 32768. */
export function ads1115Volts(code: number, range: Ads1115Range): number {
  const signed = (code << 16) >> 16;
  return (signed * range) / 32768;
}

/**
 * TI ADS1115 16-bit ADC in single-shot mode: for each configured channel, writes the config
 * register with OS=1, waits one conversion period, polls OS until the conversion is done and
 * reads the signed conversion register (big-endian, hence block reads, not SMBus words).
 * A result at either end of the scale is SENSOR_OUT_OF_RANGE (the input exceeds the range).
 */
export function createAds1115(options: Ads1115Options): Sensor {
  const address = options.address ?? 0x48;
  const rate = options.rate ?? 128;
  const { bus, clock, id } = options;
  let ready = false;

  const fail = (code: SensorErrorCode, message: string, register: number, extra: Record<string, unknown> = {}) =>
    new SensorError(code, `ads1115 ${id} at ${hex(address)} on bus ${bus.busNumber}: ${message}`, {
      sensor: id,
      driver: 'ads1115',
      bus: bus.busNumber,
      address,
      register,
      ...extra,
    });

  const readReg = async (register: number) => {
    const buf = Buffer.alloc(2);
    await bus.readI2cBlock(address, register, 2, buf);
    return buf.readUInt16BE(0);
  };
  const writeReg = async (register: number, value: number) => {
    const buf = Buffer.alloc(2);
    buf.writeUInt16BE(value & 0xffff, 0);
    await bus.writeI2cBlock(address, register, 2, buf);
  };

  return {
    id,
    driver: 'ads1115',
    async init() {
      ready = false;
      if (options.channels.length === 0) throw fail('SENSOR_NOT_READY', 'no channels configured', ADS1115.REG_CONFIG);
      // No id register: restore the comparator thresholds to their reset values and check
      // they read back, which a different chip at the same address is unlikely to do.
      await writeReg(ADS1115.REG_LO_THRESH, 0x8000);
      await writeReg(ADS1115.REG_HI_THRESH, 0x7fff);
      const lo = await readReg(ADS1115.REG_LO_THRESH);
      const hi = await readReg(ADS1115.REG_HI_THRESH);
      if (lo !== 0x8000 || hi !== 0x7fff) {
        throw fail(
          'SENSOR_WRONG_CHIP',
          `threshold registers read back ${hex(lo, 4)}/${hex(hi, 4)}`,
          ADS1115.REG_LO_THRESH,
        );
      }
      ready = true;
    },
    async read(): Promise<Metrics> {
      if (!ready) throw fail('SENSOR_NOT_READY', 'read before init', ADS1115.REG_CONFIG);
      const metrics: Metrics = {};
      const periodMs = Math.ceil(1000 / rate) + 1;
      for (const ch of options.channels) {
        const range = ch.range ?? 4.096;
        await writeReg(ADS1115.REG_CONFIG, ads1115Config(ch.input, range, rate));
        await sleep(clock, periodMs);
        let done = false;
        for (let i = 0; i < 5 && !done; i += 1) {
          done = ((await readReg(ADS1115.REG_CONFIG)) & ADS1115.OS) !== 0;
          if (!done) await sleep(clock, 1);
        }
        if (!done) throw fail('SENSOR_TIMEOUT', `conversion of ${ch.name} did not finish`, ADS1115.REG_CONFIG);
        const code = await readReg(ADS1115.REG_CONVERSION);
        if (code === 0x7fff || code === 0x8000) {
          throw fail('SENSOR_OUT_OF_RANGE', `${ch.name} beyond ±${range} V`, ADS1115.REG_CONVERSION, {
            channel: ch.name,
            raw: code,
          });
        }
        const v = ads1115Volts(code, range) * (ch.scale ?? 1) + (ch.offset ?? 0);
        metrics[ch.name] = Math.round(v * 1e6) / 1e6;
      }
      return metrics;
    },
    async close() {
      ready = false;
    },
  };
}
