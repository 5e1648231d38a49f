import { type Bme280Calibration, type Clock, encodeBme280Calibration } from '@pifleet/device-agent';
import type { I2cDeviceModel } from '../i2c-bus.js';

/**
 * Register-level model of a Bosch BME280 (datasheet BST-BME280-DS002 section 5). It holds
 * trimming parameters in 0x88..0xA1 / 0xE1..0xE7, honours soft reset, ctrl_hum latching on
 * the next ctrl_meas write, forced and normal mode, the measuring/im_update status bits with
 * datasheet timing on the injected clock, oversampling resolution and skipped outputs
 * (0x80000 / 0x8000). Raw ADC values come from inverting the datasheet's floating-point
 * compensation (an implementation independent of the driver's integer one), so the real
 * driver decodes the modelled physical value within the chip's resolution.
 */

/** Trimming of the BMP280 datasheet's worked example (T, P) plus a real BME280's humidity trimming. */
export const DEFAULT_BME280_CALIBRATION: Bme280Calibration = {
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
  H1: 75,
  H2: 362,
  H3: 0,
  H4: 313,
  H5: 50,
  H6: 30,
};

export interface Bme280Physical {
  readonly temperature: number; // °C
  readonly humidity: number; // %RH
  readonly pressure: number; // hPa
}

// ---- datasheet floating-point compensation (section 8.1), and its inverse by bisection ----

export function temperatureDouble(adcT: number, c: Bme280Calibration): { t: number; tFine: number } {
  const v1 = (adcT / 16384 - c.T1 / 1024) * c.T2;
  const d = adcT / 131072 - c.T1 / 8192;
  const v2 = d * d * c.T3;
  return { t: (v1 + v2) / 5120, tFine: Math.trunc(v1 + v2) };
}

export function pressureDouble(adcP: number, tFine: number, c: Bme280Calibration): number {
  let v1 = tFine / 2 - 64000;
  let v2 = (v1 * v1 * c.P6) / 32768;
  v2 += v1 * c.P5 * 2;
  v2 = v2 / 4 + c.P4 * 65536;
  v1 = ((c.P3 * v1 * v1) / 524288 + c.P2 * v1) / 524288;
  v1 = (1 + v1 / 32768) * c.P1;
  if (v1 === 0) return 0;
  let p = 1048576 - adcP;
  p = ((p - v2 / 4096) * 6250) / v1;
  v1 = (c.P9 * p * p) / 2147483648;
  v2 = (p * c.P8) / 32768;
  return p + (v1 + v2 + c.P7) / 16; // Pa
}

export function humidityDouble(adcH: number, tFine: number, c: Bme280Calibration): number {
  let h = tFine - 76800;
  h =
    (adcH - (c.H4 * 64 + (c.H5 / 16384) * h)) *
    ((c.H2 / 65536) * (1 + (c.H6 / 67108864) * h * (1 + (c.H3 / 67108864) * h)));
  h *= 1 - (c.H1 * h) / 524288;
  return Math.min(100, Math.max(0, h));
}

/** Smallest-error integer x in [lo, hi] for a monotonic f, by bisection. */
function invert(f: (x: number) => number, target: number, lo: number, hi: number): number {
  const increasing = f(hi) >= f(lo);
  let a = lo;
  let b = hi;
  while (b - a > 1) {
    const m = Math.floor((a + b) / 2);
    if (f(m) < target === increasing) a = m;
    else b = m;
  }
  return Math.abs(f(a) - target) <= Math.abs(f(b) - target) ? a : b;
}

/** Bits of resolution per oversampling setting (datasheet 3.4–3.6): x1 16 bit … x16 20 bit. */
const BITS: Readonly<Record<number, number>> = { 1: 16, 2: 17, 3: 18, 4: 19, 5: 20 };
const quantize = (adc: number, osrs: number) => {
  const drop = 20 - (BITS[osrs] ?? 20);
  const step = 1 << drop;
  return Math.min(0xfffff, Math.round(adc / step) * step);
};

/** The raw ADC words a chip with calibration `c` would output for these physical values. */
export function rawForPhysical(
  v: Bme280Physical,
  c: Bme280Calibration,
  osrs: { t: number; p: number } = { t: 5, p: 5 },
): { adcT: number; adcP: number; adcH: number } {
  const adcT = quantize(
    invert((x) => temperatureDouble(x, c).t, v.temperature, 0, 0xfffff),
    osrs.t,
  );
  const { tFine } = temperatureDouble(adcT, c);
  const adcP = quantize(
    invert((x) => pressureDouble(x, tFine, c), v.pressure * 100, 0, 0xfffff),
    osrs.p,
  );
  const adcH = invert((x) => humidityDouble(x, tFine, c), v.humidity, 0, 0xffff);
  return { adcT, adcP, adcH };
}

// ---- the register model --------------------------------------------------------------------

export type Bme280Fault = 'stuck' | 'out-of-range' | undefined;

export interface Bme280ModelOptions {
  readonly clock: Clock;
  /** Physical truth at a clock time (an environment model). */
  readonly source: (ts: number) => Bme280Physical;
  readonly calibration?: Bme280Calibration;
  /** 0x60 for a BME280; set 0x58 to model a BMP280 wrongly fitted. */
  readonly chipId?: number;
}

export class Bme280Model implements I2cDeviceModel {
  readonly calibration: Bme280Calibration;
  readonly #clock: Clock;
  readonly #source: (ts: number) => Bme280Physical;
  readonly #chipId: number;
  readonly #regs = new Uint8Array(256);
  #pointer = 0;
  #ctrlHumLatched = 0;
  #measuringUntil = 0;
  #imUpdateUntil = 0;
  #pendingAt: number | undefined;
  #fault: Bme280Fault;
  /** Register writes seen, in order (for tests of driver sequencing). */
  readonly writes: Array<{ register: number; value: number }> = [];
  /** Conversions completed. */
  conversions = 0;
  /** Clock time the environment was last sampled (end of the last conversion). */
  lastConversionAt: number | undefined;

  constructor(options: Bme280ModelOptions) {
    this.#clock = options.clock;
    this.#source = options.source;
    this.#chipId = options.chipId ?? 0x60;
    this.calibration = options.calibration ?? DEFAULT_BME280_CALIBRATION;
    this.powerCycle();
  }

  /** Power-on reset: registers to their reset values, calibration reloaded from NVM. */
  powerCycle(): void {
    this.#regs.fill(0);
    const { block1, block2 } = encodeBme280Calibration(this.calibration);
    this.#regs.set(block1, 0x88);
    this.#regs.set(block2, 0xe1);
    this.#regs[0xd0] = this.#chipId;
    // Data registers read 0x80000 / 0x8000 until the first conversion.
    this.#regs.set([0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00], 0xf7);
    this.#ctrlHumLatched = 0;
    this.#measuringUntil = 0;
    this.#pendingAt = undefined;
    this.#imUpdateUntil = this.#clock.now() + 1;
  }

  /** Injects a chip fault: `stuck` freezes the data registers; `out-of-range` outputs all-ones. */
  setFault(fault: Bme280Fault): void {
    this.#fault = fault;
  }

  /** Mode bits of ctrl_meas. */
  mode(): number {
    return (this.#regs[0xf4] ?? 0) & 0b11;
  }

  write(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#pointer = data[0] ?? 0;
    // Multi-byte writes are register/value pairs (datasheet 6.2.1), not auto-increment.
    for (let i = 0; i + 1 < data.length; i += 2) this.#writeRegister(data[i] ?? 0, data[i + 1] ?? 0);
  }

  read(length: number): Uint8Array {
    this.#settle();
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 1) {
      const r = (this.#pointer + i) & 0xff;
      out[i] = r === 0xf3 ? this.#status() : (this.#regs[r] ?? 0);
    }
    this.#pointer = (this.#pointer + length) & 0xff;
    return out;
  }

  #status(): number {
    const now = this.#clock.now();
    return (now < this.#measuringUntil ? 0x08 : 0) | (now < this.#imUpdateUntil ? 0x01 : 0);
  }

  #writeRegister(register: number, value: number): void {
    this.writes.push({ register, value });
    switch (register) {
      case 0xe0:
        if (value === 0xb6) this.powerCycle();
        return;
      case 0xf2:
        this.#regs[0xf2] = value & 0x07;
        return;
      case 0xf4:
        this.#regs[0xf4] = value;
        this.#ctrlHumLatched = (this.#regs[0xf2] ?? 0) & 0x07;
        if ((value & 0b11) !== 0) this.#startConversion();
        return;
      case 0xf5:
        if (this.mode() === 0) this.#regs[0xf5] = value & 0xfd; // writes ignored outside sleep mode
        return;
      default:
        // Read-only registers (id, calibration, data, status) ignore writes.
        return;
    }
  }

  #startConversion(): void {
    const ctrl = this.#regs[0xf4] ?? 0;
    const os = (f: number) => (f === 0 ? 0 : 1 << (f - 1));
    const t = os((ctrl >> 5) & 7);
    const p = os((ctrl >> 2) & 7);
    const h = os(this.#ctrlHumLatched);
    // Typical measurement time (datasheet 9.1), shorter than the maximum the driver waits.
    const ms = 1 + 2 * t + (p > 0 ? 2 * p + 0.5 : 0) + (h > 0 ? 2 * h + 0.5 : 0);
    const now = this.#clock.now();
    this.#measuringUntil = now + ms;
    this.#pendingAt = now + ms;
  }

  /** Completes a conversion that is due: latch the environment into the data registers. */
  #settle(): void {
    const now = this.#clock.now();
    const normal = this.mode() === 0b11;
    if (this.#pendingAt === undefined && !normal) return;
    if (this.#pendingAt !== undefined && now < this.#pendingAt) return;
    const at = this.#pendingAt ?? now;
    this.#pendingAt = undefined;
    if (!normal) this.#regs[0xf4] = (this.#regs[0xf4] ?? 0) & 0xfc; // forced → back to sleep
    if (this.#fault === 'stuck' && this.conversions > 0) return;
    this.conversions += 1;
    this.lastConversionAt = at;
    const ctrl = this.#regs[0xf4] ?? 0;
    const osrsT = (ctrl >> 5) & 7;
    const osrsP = (ctrl >> 2) & 7;
    let adcT = 0x80000;
    let adcP = 0x80000;
    let adcH = 0x8000;
    if (this.#fault === 'out-of-range') {
      adcT = 0xfffff;
      adcP = 0xfffff;
      adcH = 0xffff;
    } else if (osrsT !== 0) {
      const raw = rawForPhysical(this.#source(at), this.calibration, { t: osrsT, p: osrsP || 5 });
      adcT = raw.adcT;
      if (osrsP !== 0) adcP = raw.adcP;
      if (this.#ctrlHumLatched !== 0) adcH = raw.adcH;
    }
    this.#regs.set(
      [
        (adcP >> 12) & 0xff,
        (adcP >> 4) & 0xff,
        (adcP & 0x0f) << 4,
        (adcT >> 12) & 0xff,
        (adcT >> 4) & 0xff,
        (adcT & 0x0f) << 4,
        (adcH >> 8) & 0xff,
        adcH & 0xff,
      ],
      0xf7,
    );
  }
}
