import type { Clock } from '@pifleet/device-agent';
import type { I2cDeviceModel } from '../i2c-bus.js';

/**
 * Register-level model of a TI ADS1115 (SBAS444): pointer register, 16-bit big-endian
 * conversion/config/threshold registers, single-shot conversions started by writing OS=1
 * and finishing one data-rate period later on the injected clock (OS reads 0 meanwhile),
 * MUX (single-ended and differential), PGA full-scale ranges and saturation at ±FSR.
 */

const FSR = [6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256] as const;
const SPS = [8, 16, 32, 64, 128, 250, 475, 860] as const;

export type Ads1115Fault = 'stuck' | 'out-of-range' | undefined;

export class Ads1115Model implements I2cDeviceModel {
  readonly #clock: Clock;
  readonly #inputs: (ts: number) => readonly number[];
  #pointer = 0;
  #config = 0x8583;
  #lo = 0x8000;
  #hi = 0x7fff;
  #conversion = 0;
  #doneAt: number | undefined;
  #fault: Ads1115Fault;
  conversions = 0;
  /** Clock time the inputs were last sampled. */
  lastConversionAt: number | undefined;

  /** `inputs(ts)` gives the voltages on AIN0..AIN3 at a clock time. */
  constructor(options: { clock: Clock; inputs: (ts: number) => readonly number[] }) {
    this.#clock = options.clock;
    this.#inputs = options.inputs;
  }

  powerCycle(): void {
    this.#pointer = 0;
    this.#config = 0x8583;
    this.#lo = 0x8000;
    this.#hi = 0x7fff;
    this.#conversion = 0;
    this.#doneAt = undefined;
  }

  setFault(fault: Ads1115Fault): void {
    this.#fault = fault;
  }

  write(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#pointer = (data[0] ?? 0) & 0x03;
    if (data.length < 3) return;
    const value = ((data[1] ?? 0) << 8) | (data[2] ?? 0);
    switch (this.#pointer) {
      case 1:
        this.#config = value & 0x7fff; // OS is write-only-start; reads report status
        if ((value & 0x8000) !== 0 && this.#doneAt === undefined) {
          const sps = SPS[(value >> 5) & 7] ?? 128;
          this.#doneAt = this.#clock.now() + 1000 / sps;
        }
        return;
      case 2:
        this.#lo = value;
        return;
      case 3:
        this.#hi = value;
        return;
      default:
        return; // conversion register is read-only
    }
  }

  read(length: number): Uint8Array {
    this.#settle();
    const value = [this.#conversion, this.#configWithStatus(), this.#lo, this.#hi][this.#pointer] ?? 0;
    const out = new Uint8Array(length);
    // The register's two bytes, MSB first; further bytes repeat them.
    for (let i = 0; i < length; i += 1) out[i] = i % 2 === 0 ? (value >> 8) & 0xff : value & 0xff;
    return out;
  }

  #configWithStatus(): number {
    return this.#config | (this.#doneAt === undefined ? 0x8000 : 0);
  }

  #settle(): void {
    if (this.#doneAt === undefined || this.#clock.now() < this.#doneAt) return;
    const at = this.#doneAt;
    this.#doneAt = undefined;
    if (this.#fault === 'stuck' && this.conversions > 0) return;
    this.conversions += 1;
    this.lastConversionAt = at;
    if (this.#fault === 'out-of-range') {
      this.#conversion = 0x7fff;
      return;
    }
    const mux = (this.#config >> 12) & 7;
    const fsr = FSR[(this.#config >> 9) & 7] ?? 2.048;
    const v = this.#inputs(at);
    const ain = (i: number) => v[i] ?? 0;
    const pairs: ReadonlyArray<readonly [number, number | undefined]> = [
      [0, 1],
      [0, 3],
      [1, 3],
      [2, 3],
      [0, undefined],
      [1, undefined],
      [2, undefined],
      [3, undefined],
    ];
    const [p, n] = pairs[mux] ?? [0, undefined];
    const volts = ain(p) - (n === undefined ? 0 : ain(n));
    const code = Math.max(-32768, Math.min(32767, Math.round((volts / fsr) * 32768)));
    this.#conversion = code & 0xffff;
  }
}
