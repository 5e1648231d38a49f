import { describe, expect, it } from 'vitest';
import {
  type Bme280Calibration,
  compensateBme280,
  compensateHumidity,
  compensatePressure,
  compensateTemperature,
  decodeBme280Data,
  encodeBme280Calibration,
  parseBme280Calibration,
} from '../../src/drivers/bme280-compensation.js';

/**
 * The worked example of the Bosch BMP280 datasheet (BST-BMP280-DS001, section 3.12), whose
 * temperature and pressure formulas and trimming layout the BME280 shares.
 */
const DATASHEET: Bme280Calibration = {
  T1: 27504,
  T2: 26435,
  T3: -1000,
  P1: 36477,
  P2: -10685,
  P3: 3024,
  P4: 2855,
  P5: 140,
  P6: -7,
  P7: 15500,
  P8: -14600,
  P9: 6000,
  // Humidity trimming of a real BME280 (the BMP280 example has none).
  H1: 75,
  H2: 362,
  H3: 0,
  H4: 313,
  H5: 50,
  H6: 30,
};

/** The datasheet's double-precision humidity formula (section 4.2.3), as an independent reference. */
function humidityDouble(adcH: number, tFine: number, c: Bme280Calibration): number {
  let h = tFine - 76800;
  h =
    (adcH - (c.H4 * 64 + (c.H5 / 16384) * h)) *
    ((c.H2 / 65536) * (1 + (c.H6 / 67108864) * h * (1 + (c.H3 / 67108864) * h)));
  h *= 1 - (c.H1 * h) / 524288;
  return Math.min(100, Math.max(0, h));
}

/** The datasheet's double-precision temperature formula, for t_fine over a range. */
function temperatureDouble(adcT: number, c: Bme280Calibration): number {
  const v1 = (adcT / 16384 - c.T1 / 1024) * c.T2;
  const v2 = (adcT / 131072 - c.T1 / 8192) * (adcT / 131072 - c.T1 / 8192) * c.T3;
  return (v1 + v2) / 5120;
}

describe('BME280 compensation against the datasheet', () => {
  it('turns adc_T 519888 into 25.08 °C with t_fine 128422', () => {
    expect(compensateTemperature(519888, DATASHEET)).toEqual({ centiC: 2508, tFine: 128422 });
  });

  it('turns adc_P 415148 into 100653.27 Pa with the 64-bit formula', () => {
    const q24_8 = compensatePressure(415148, 128422, DATASHEET);
    // The datasheet prints 25767236 for this step; executing its published 64-bit formula
    // gives 25767233 (0.012 Pa apart, integer rounding). Both round to 100653.25–.27 Pa.
    expect(q24_8).toBe(25767233);
    expect(q24_8 / 256).toBeCloseTo(100653.27, 1);
  });

  it('returns 0 instead of dividing by zero when dig_P1 is 0', () => {
    expect(compensatePressure(415148, 128422, { ...DATASHEET, P1: 0 })).toBe(0);
  });

  it.each([
    [0x5000, 50_000],
    [0x6000, 128_422],
    [0x7000, 200_000],
    [0x8000, -20_000],
    [0x6800, 80_000],
  ])('matches the double-precision humidity formula within 0.01 %%RH (adc_H %i, t_fine %i)', (adcH, tFine) => {
    const int = compensateHumidity(adcH, tFine, DATASHEET) / 1024;
    expect(int).toBeCloseTo(humidityDouble(adcH, tFine, DATASHEET), 1);
    expect(Math.abs(int - humidityDouble(adcH, tFine, DATASHEET))).toBeLessThan(0.01);
  });

  it('clamps humidity to 0..100 %RH', () => {
    expect(compensateHumidity(0, 128422, DATASHEET)).toBe(0);
    expect(compensateHumidity(0xffff, 128422, DATASHEET) / 1024).toBe(100);
  });

  it.each([300_000, 450_000, 519_888, 600_000, 700_000])(
    'matches the double-precision temperature formula within 0.01 °C (adc_T %i)',
    (adcT) => {
      expect(
        Math.abs(compensateTemperature(adcT, DATASHEET).centiC / 100 - temperatureDouble(adcT, DATASHEET)),
      ).toBeLessThan(0.011);
    },
  );

  it('decodes the burst read layout press[19:0] temp[19:0] hum[15:0]', () => {
    // adc_P 415148 = 0x655AC, adc_T 519888 = 0x7EED0, adc_H 0x6A5B
    const data = Uint8Array.from([0x65, 0x5a, 0xc0, 0x7e, 0xed, 0x00, 0x6a, 0x5b]);
    expect(decodeBme280Data(data)).toEqual({ adcP: 415148, adcT: 519888, adcH: 0x6a5b });
    const v = compensateBme280(decodeBme280Data(data), DATASHEET);
    expect(v.temperature).toBe(25.08);
    expect(v.pressure).toBeCloseTo(1006.53, 2);
    expect(v.humidity).toBeGreaterThan(0);
    expect(v.humidity).toBeLessThan(100);
  });
});

describe('BME280 calibration registers', () => {
  it('round-trips through the register layout, including the shared 0xE5 nibbles of dig_H4/dig_H5', () => {
    const { block1, block2 } = encodeBme280Calibration(DATASHEET);
    // 0x88/0x89 = dig_T1 little-endian, 0xE4..0xE6 = H4[11:4], H5[3:0]<<4 | H4[3:0], H5[11:4]
    expect([block1[0], block1[1]]).toEqual([27504 & 0xff, 27504 >> 8]);
    expect([block2[3], block2[4], block2[5]]).toEqual([0x13, 0x29, 0x03]);
    expect(parseBme280Calibration(block1, block2)).toEqual(DATASHEET);
  });

  it.each([
    { H4: -300, H5: -7 },
    { H4: 2047, H5: -2048 },
    { H4: -2048, H5: 2047 },
  ])('keeps the sign of 12-bit dig_H4/dig_H5 ($H4, $H5)', ({ H4, H5 }) => {
    const cal = { ...DATASHEET, H4, H5, H6: -5, T2: -1234 };
    const { block1, block2 } = encodeBme280Calibration(cal);
    expect(parseBme280Calibration(block1, block2)).toEqual(cal);
  });

  it('rejects short blocks', () => {
    expect(() => parseBme280Calibration(new Uint8Array(10), new Uint8Array(7))).toThrow(RangeError);
  });
});
