/**
 * Bosch BME280 calibration parsing and compensation, from the datasheet (BST-BME280-DS002,
 * section 4.2.2 "Trimming parameter readout" and 4.2.3 "Compensation formulas").
 *
 * Pure functions, no I/O. Temperature and humidity use the datasheet's 32-bit integer
 * formulas, emulated exactly with `Math.imul` and `>>` (C int32 semantics). Pressure uses the
 * datasheet's 64-bit integer formula, computed with BigInt (the most accurate integer
 * variant; ~0.01 Pa resolution, no float rounding).
 */

/** Trimming parameters (dig_T1..dig_H6) as the chip stores them in NVM. */
export interface Bme280Calibration {
  readonly T1: number; // uint16
  readonly T2: number; // int16
  readonly T3: number; // int16
  readonly P1: number; // uint16
  readonly P2: number; // int16
  readonly P3: number;
  readonly P4: number;
  readonly P5: number;
  readonly P6: number;
  readonly P7: number;
  readonly P8: number;
  readonly P9: number;
  readonly H1: number; // uint8  (0xA1)
  readonly H2: number; // int16  (0xE1/0xE2)
  readonly H3: number; // uint8  (0xE3)
  readonly H4: number; // int12  (0xE4[7:0] << 4 | 0xE5[3:0])
  readonly H5: number; // int12  (0xE6[7:0] << 4 | 0xE5[7:4])
  readonly H6: number; // int8   (0xE7)
}

/** First calibration block: 26 bytes from 0x88 (calib00..calib25). */
export const BME280_CALIB1_START = 0x88;
export const BME280_CALIB1_LENGTH = 26;
/** Second calibration block: 7 bytes from 0xE1 (calib26..calib32). */
export const BME280_CALIB2_START = 0xe1;
export const BME280_CALIB2_LENGTH = 7;

const u16le = (b: Uint8Array, i: number) => (b[i] ?? 0) | ((b[i + 1] ?? 0) << 8);
const s16le = (b: Uint8Array, i: number) => (u16le(b, i) << 16) >> 16;
const s8 = (v: number) => (v << 24) >> 24;

/**
 * Decodes the two calibration blocks. dig_H4 and dig_H5 share register 0xE5: H4 takes its
 * low nibble (with 0xE4 as the signed upper 8 bits), H5 its high nibble (with 0xE6 as the
 * signed upper 8 bits).
 */
export function parseBme280Calibration(block1: Uint8Array, block2: Uint8Array): Bme280Calibration {
  if (block1.length < BME280_CALIB1_LENGTH || block2.length < BME280_CALIB2_LENGTH) {
    throw new RangeError(`calibration blocks too short (${block1.length}, ${block2.length})`);
  }
  const e4 = block2[3] ?? 0;
  const e5 = block2[4] ?? 0;
  const e6 = block2[5] ?? 0;
  return {
    T1: u16le(block1, 0),
    T2: s16le(block1, 2),
    T3: s16le(block1, 4),
    P1: u16le(block1, 6),
    P2: s16le(block1, 8),
    P3: s16le(block1, 10),
    P4: s16le(block1, 12),
    P5: s16le(block1, 14),
    P6: s16le(block1, 16),
    P7: s16le(block1, 18),
    P8: s16le(block1, 20),
    P9: s16le(block1, 22),
    H1: block1[25] ?? 0,
    H2: s16le(block2, 0),
    H3: block2[2] ?? 0,
    H4: (s8(e4) * 16) | (e5 & 0x0f),
    H5: (s8(e6) * 16) | (e5 >> 4),
    H6: s8(block2[6] ?? 0),
  };
}

/** Encodes calibration back to the two register blocks (used by chip models and tests). */
export function encodeBme280Calibration(c: Bme280Calibration): { block1: Uint8Array; block2: Uint8Array } {
  const block1 = new Uint8Array(BME280_CALIB1_LENGTH);
  const words = [c.T1, c.T2, c.T3, c.P1, c.P2, c.P3, c.P4, c.P5, c.P6, c.P7, c.P8, c.P9];
  words.forEach((w, i) => {
    block1[i * 2] = w & 0xff;
    block1[i * 2 + 1] = (w >> 8) & 0xff;
  });
  block1[24] = 0; // 0xA0 reserved
  block1[25] = c.H1 & 0xff;
  const block2 = new Uint8Array(BME280_CALIB2_LENGTH);
  block2[0] = c.H2 & 0xff;
  block2[1] = (c.H2 >> 8) & 0xff;
  block2[2] = c.H3 & 0xff;
  block2[3] = (c.H4 >> 4) & 0xff;
  block2[4] = (c.H4 & 0x0f) | ((c.H5 & 0x0f) << 4);
  block2[5] = (c.H5 >> 4) & 0xff;
  block2[6] = c.H6 & 0xff;
  return { block1, block2 };
}

/** Raw ADC words from the burst read 0xF7..0xFE. */
export interface Bme280Raw {
  readonly adcP: number; // 20 bit
  readonly adcT: number; // 20 bit
  readonly adcH: number; // 16 bit
}

/** Value the chip outputs for a measurement that was skipped (oversampling 0). */
export const BME280_SKIPPED_20BIT = 0x80000;
export const BME280_SKIPPED_16BIT = 0x8000;

/** Decodes the 8 data bytes read from 0xF7: press[19:0], temp[19:0], hum[15:0]. */
export function decodeBme280Data(d: Uint8Array): Bme280Raw {
  const b = (i: number) => d[i] ?? 0;
  return {
    adcP: (b(0) << 12) | (b(1) << 4) | (b(2) >> 4),
    adcT: (b(3) << 12) | (b(4) << 4) | (b(5) >> 4),
    adcH: (b(6) << 8) | b(7),
  };
}

/** Temperature: returns hundredths of °C (2508 = 25.08 °C) and t_fine for P and H. */
export function compensateTemperature(adcT: number, c: Bme280Calibration): { centiC: number; tFine: number } {
  const var1 = Math.imul((adcT >> 3) - (c.T1 << 1), c.T2) >> 11;
  const d = (adcT >> 4) - c.T1;
  const var2 = Math.imul(Math.imul(d, d) >> 12, c.T3) >> 14;
  const tFine = (var1 + var2) | 0;
  return { centiC: (Math.imul(tFine, 5) + 128) >> 8, tFine };
}

/** Pressure: returns Pa in unsigned Q24.8 (25767236 = 100653.27 Pa); 0 if the calibration would divide by zero. */
export function compensatePressure(adcP: number, tFine: number, c: Bme280Calibration): number {
  let var1 = BigInt(tFine) - 128000n;
  let var2 = var1 * var1 * BigInt(c.P6);
  var2 += (var1 * BigInt(c.P5)) << 17n;
  var2 += BigInt(c.P4) << 35n;
  var1 = ((var1 * var1 * BigInt(c.P3)) >> 8n) + ((var1 * BigInt(c.P2)) << 12n);
  var1 = (((1n << 47n) + var1) * BigInt(c.P1)) >> 33n;
  if (var1 === 0n) return 0;
  let p = 1048576n - BigInt(adcP);
  p = (((p << 31n) - var2) * 3125n) / var1;
  var1 = (BigInt(c.P9) * (p >> 13n) * (p >> 13n)) >> 25n;
  var2 = (BigInt(c.P8) * p) >> 19n;
  p = ((p + var1 + var2) >> 8n) + (BigInt(c.P7) << 4n);
  return Number(BigInt.asUintN(32, p));
}

/** Humidity: returns %RH in unsigned Q22.10 (47445 = 46.333 %RH). */
export function compensateHumidity(adcH: number, tFine: number, c: Bme280Calibration): number {
  let v = (tFine - 76800) | 0;
  const a = ((adcH << 14) - (c.H4 << 20) - Math.imul(c.H5, v) + 16384) >> 15;
  const b = (Math.imul(Math.imul(v, c.H6) >> 10, (Math.imul(v, c.H3) >> 11) + 32768) >> 10) + 2097152;
  v = Math.imul(a, (Math.imul(b, c.H2) + 8192) >> 14);
  v = (v - (Math.imul(Math.imul(v >> 15, v >> 15) >> 7, c.H1) >> 4)) | 0;
  if (v < 0) v = 0;
  if (v > 419430400) v = 419430400;
  return v >>> 12;
}

/** Physical values in the units the agent reports. */
export interface Bme280Values {
  /** °C, 0.01 resolution. */
  readonly temperature: number;
  /** hPa. */
  readonly pressure: number;
  /** %RH. */
  readonly humidity: number;
}

/** Runs all three compensations on one burst read. */
export function compensateBme280(raw: Bme280Raw, c: Bme280Calibration): Bme280Values {
  const t = compensateTemperature(raw.adcT, c);
  return {
    temperature: t.centiC / 100,
    pressure: compensatePressure(raw.adcP, t.tFine, c) / 256 / 100,
    humidity: compensateHumidity(raw.adcH, t.tFine, c) / 1024,
  };
}
