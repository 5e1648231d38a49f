import type { Clock } from '@pifleet/device-agent';
import type { I2cDeviceModel } from '../i2c-bus.js';

/**
 * Model of a ROHM BH1750FVI: opcode-driven (no registers). Power down/on, reset, continuous
 * and one-time modes; a one-time H-resolution measurement takes the typical 120 ms on the
 * injected clock, stores count = lux · 1.2 and powers the chip down. Reads return the 16-bit
 * count big-endian.
 */

export type Bh1750Fault = 'stuck' | 'out-of-range' | undefined;

export class Bh1750Model implements I2cDeviceModel {
  readonly #clock: Clock;
  readonly #lux: (ts: number) => number;
  #powered = false;
  #data = 0;
  #doneAt: number | undefined;
  #continuous = false;
  #fault: Bh1750Fault;
  measurements = 0;
  /** Clock time the light level was last sampled. */
  lastMeasurementAt: number | undefined;

  constructor(options: { clock: Clock; lux: (ts: number) => number }) {
    this.#clock = options.clock;
    this.#lux = options.lux;
  }

  powerCycle(): void {
    this.#powered = false;
    this.#data = 0;
    this.#doneAt = undefined;
    this.#continuous = false;
  }

  setFault(fault: Bh1750Fault): void {
    this.#fault = fault;
  }

  write(data: Uint8Array): void {
    for (const op of data) {
      if (op === 0x00) {
        this.#powered = false;
        this.#continuous = false;
      } else if (op === 0x01) {
        this.#powered = true;
      } else if (op === 0x07) {
        if (this.#powered) this.#data = 0;
      } else if ([0x10, 0x11, 0x13, 0x20, 0x21, 0x23].includes(op) && this.#powered) {
        this.#continuous = op < 0x20;
        this.#doneAt = this.#clock.now() + (op === 0x13 || op === 0x23 ? 16 : 120);
      }
      // MTreg (0x40–0x7F) and unknown opcodes are accepted and ignored.
    }
  }

  read(length: number): Uint8Array {
    this.#settle();
    const out = new Uint8Array(length);
    out[0] = (this.#data >> 8) & 0xff;
    if (length > 1) out[1] = this.#data & 0xff;
    return out;
  }

  #settle(): void {
    if (this.#doneAt === undefined || this.#clock.now() < this.#doneAt) return;
    const at = this.#doneAt;
    this.#doneAt = this.#continuous ? this.#clock.now() + 120 : undefined;
    if (!this.#continuous) this.#powered = false;
    if (this.#fault === 'stuck' && this.measurements > 0) return;
    this.measurements += 1;
    this.lastMeasurementAt = at;
    this.#data = this.#fault === 'out-of-range' ? 0xffff : Math.min(0xffff, Math.round(this.#lux(at) * 1.2));
  }
}
