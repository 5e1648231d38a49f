import { hex, SensorError, type SensorErrorCode } from '../hardware/errors.js';
import { type Clock, sleep } from '../ports/clock.js';
import type { I2cBus } from '../ports/i2c.js';
import {
  BME280_CALIB1_LENGTH,
  BME280_CALIB1_START,
  BME280_CALIB2_LENGTH,
  BME280_CALIB2_START,
  BME280_SKIPPED_16BIT,
  BME280_SKIPPED_20BIT,
  type Bme280Calibration,
  compensateBme280,
  decodeBme280Data,
  parseBme280Calibration,
} from './bme280-compensation.js';
import type { Metrics, Sensor } from './types.js';

/** BME280 register map (datasheet section 5.3). */
export const BME280 = {
  CHIP_ID: 0x60,
  /** BMP280 answers 0x56–0x58 at the same register: pressure and temperature only. */
  BMP280_IDS: [0x56, 0x57, 0x58] as readonly number[],
  REG_ID: 0xd0,
  REG_RESET: 0xe0,
  RESET_WORD: 0xb6,
  REG_CTRL_HUM: 0xf2,
  REG_STATUS: 0xf3,
  REG_CTRL_MEAS: 0xf4,
  REG_CONFIG: 0xf5,
  REG_DATA: 0xf7,
  DATA_LENGTH: 8,
  REG_PRESS: 0xf7,
  REG_TEMP: 0xfa,
  REG_HUM: 0xfd,
  STATUS_MEASURING: 0x08,
  STATUS_IM_UPDATE: 0x01,
  MODE_SLEEP: 0b00,
  MODE_FORCED: 0b01,
} as const;

export type Oversampling = 0 | 1 | 2 | 4 | 8 | 16;
/** osrs_x field value for an oversampling factor (0 = skipped). */
const OSRS: Readonly<Record<Oversampling, number>> = { 0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5 };
const FILTER: Readonly<Record<number, number>> = { 0: 0, 2: 1, 4: 2, 8: 3, 16: 4 };

export interface Bme280Options {
  readonly id: string;
  readonly bus: I2cBus;
  readonly clock: Clock;
  /** 0x76 (SDO to GND, most breakout boards) or 0x77. Default 0x76. */
  readonly address?: number;
  /** Oversampling per quantity; default 1 each (the datasheet's "weather monitoring" setting). */
  readonly oversampling?: {
    readonly temperature?: Oversampling | undefined;
    readonly pressure?: Oversampling | undefined;
    readonly humidity?: Oversampling | undefined;
  };
  /** IIR filter coefficient: 0 (off, default), 2, 4, 8, 16. */
  readonly filter?: 0 | 2 | 4 | 8 | 16;
  /** Plausible ranges; a decoded value outside is SENSOR_OUT_OF_RANGE. Default: the datasheet's operating range. */
  readonly limits?: { readonly temperature?: [number, number]; readonly pressure?: [number, number] };
}

/**
 * Maximum measurement time in ms for the given oversampling (datasheet section 9.1):
 * 1.25 + 2.3·osrs_t + (2.3·osrs_p + 0.575) + (2.3·osrs_h + 0.575), skipped terms dropped.
 */
export function bme280MeasureTimeMs(t: Oversampling, p: Oversampling, h: Oversampling): number {
  return 1.25 + 2.3 * t + (p > 0 ? 2.3 * p + 0.575 : 0) + (h > 0 ? 2.3 * h + 0.575 : 0);
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * Bosch BME280 on I2C, in forced mode: each `read()` triggers one conversion, waits for it
 * (status 0xF3 bit 3), burst-reads 0xF7..0xFE and compensates with the trimming parameters.
 * Metrics: `temperature` °C, `humidity` %RH, `pressure` hPa.
 */
export function createBme280(options: Bme280Options): Sensor & { calibration(): Bme280Calibration | undefined } {
  const address = options.address ?? 0x76;
  const { bus, clock, id } = options;
  const osT = options.oversampling?.temperature ?? 1;
  const osP = options.oversampling?.pressure ?? 1;
  const osH = options.oversampling?.humidity ?? 1;
  const tLimits = options.limits?.temperature ?? [-40, 85];
  const pLimits = options.limits?.pressure ?? [300, 1100];
  const ctrlMeas = (OSRS[osT] << 5) | (OSRS[osP] << 2);
  let cal: Bme280Calibration | undefined;

  const fail = (code: SensorErrorCode, message: string, register: number, extra: Record<string, unknown> = {}) =>
    new SensorError(code, `bme280 ${id} at ${hex(address)} on bus ${bus.busNumber}: ${message}`, {
      sensor: id,
      driver: 'bme280',
      bus: bus.busNumber,
      address,
      register,
      ...extra,
    });

  const readBlock = async (start: number, length: number) => {
    const buffer = Buffer.alloc(length);
    await bus.readI2cBlock(address, start, length, buffer);
    return buffer;
  };

  /** Polls `register` until `mask` clears, sleeping `stepMs` between polls. */
  const waitClear = async (register: number, mask: number, tries: number, stepMs: number, what: string) => {
    for (let i = 0; i < tries; i += 1) {
      if (((await bus.readByte(address, register)) & mask) === 0) return;
      await sleep(clock, stepMs);
    }
    throw fail('SENSOR_TIMEOUT', `${what} did not finish`, register);
  };

  return {
    id,
    driver: 'bme280',
    calibration: () => cal,
    async init() {
      cal = undefined;
      const chipId = await bus.readByte(address, BME280.REG_ID);
      if (chipId !== BME280.CHIP_ID) {
        const what = BME280.BMP280_IDS.includes(chipId) ? 'a BMP280 (no humidity)' : `chip id ${hex(chipId)}`;
        throw fail('SENSOR_WRONG_CHIP', `expected chip id ${hex(BME280.CHIP_ID)}, found ${what}`, BME280.REG_ID, {
          chipId,
        });
      }
      await bus.writeByte(address, BME280.REG_RESET, BME280.RESET_WORD);
      await sleep(clock, 2); // start-up time after reset
      await waitClear(BME280.REG_STATUS, BME280.STATUS_IM_UPDATE, 10, 2, 'NVM copy after reset');
      const b1 = await readBlock(BME280_CALIB1_START, BME280_CALIB1_LENGTH);
      const b2 = await readBlock(BME280_CALIB2_START, BME280_CALIB2_LENGTH);
      const parsed = parseBme280Calibration(b1, b2);
      if (parsed.T1 === 0 || parsed.P1 === 0) {
        throw fail('SENSOR_NOT_READY', 'calibration reads as zero', BME280_CALIB1_START);
      }
      // ctrl_hum only takes effect after a write to ctrl_meas, so it goes first (datasheet 5.4.3).
      await bus.writeByte(address, BME280.REG_CTRL_HUM, OSRS[osH]);
      await bus.writeByte(address, BME280.REG_CONFIG, (FILTER[options.filter ?? 0] ?? 0) << 2);
      await bus.writeByte(address, BME280.REG_CTRL_MEAS, ctrlMeas | BME280.MODE_SLEEP);
      cal = parsed;
    },
    async read(): Promise<Metrics> {
      if (!cal) throw fail('SENSOR_NOT_READY', 'read before init', BME280.REG_ID);
      const c = cal;
      await bus.writeByte(address, BME280.REG_CTRL_MEAS, ctrlMeas | BME280.MODE_FORCED);
      await sleep(clock, Math.ceil(bme280MeasureTimeMs(osT, osP, osH)));
      await waitClear(BME280.REG_STATUS, BME280.STATUS_MEASURING, 10, 1, 'conversion');
      const raw = decodeBme280Data(await readBlock(BME280.REG_DATA, BME280.DATA_LENGTH));
      if (raw.adcT === BME280_SKIPPED_20BIT) throw fail('SENSOR_SKIPPED', 'temperature was skipped', BME280.REG_TEMP);
      if (osP > 0 && raw.adcP === BME280_SKIPPED_20BIT) {
        throw fail('SENSOR_SKIPPED', 'pressure was skipped', BME280.REG_PRESS);
      }
      if (osH > 0 && raw.adcH === BME280_SKIPPED_16BIT) {
        throw fail('SENSOR_SKIPPED', 'humidity was skipped (ctrl_hum lost?)', BME280.REG_HUM);
      }
      const v = compensateBme280(raw, c);
      if (v.temperature < tLimits[0] || v.temperature > tLimits[1]) {
        throw fail('SENSOR_OUT_OF_RANGE', `temperature ${v.temperature} °C out of range`, BME280.REG_TEMP, {
          value: v.temperature,
          raw: raw.adcT,
        });
      }
      const metrics: Metrics = { temperature: round(v.temperature, 2) };
      if (osH > 0) metrics.humidity = round(v.humidity, 3);
      if (osP > 0) {
        if (v.pressure < pLimits[0] || v.pressure > pLimits[1]) {
          throw fail('SENSOR_OUT_OF_RANGE', `pressure ${round(v.pressure, 2)} hPa out of range`, BME280.REG_PRESS, {
            value: v.pressure,
            raw: raw.adcP,
          });
        }
        metrics.pressure = round(v.pressure, 4);
      }
      return metrics;
    },
    async close() {
      cal = undefined;
    },
  };
}
