import type { Clock, HardwarePorts } from '@pifleet/device-agent';
import { createEnvironment, type Environment } from '../env/environment.js';
import { Ads1115Model } from './chips/ads1115-model.js';
import { Bh1750Model } from './chips/bh1750-model.js';
import { Bme280Model } from './chips/bme280-model.js';
import { SimGpioChip } from './gpio-chip.js';
import { SimI2cBus } from './i2c-bus.js';

/** Where the simulated device's chips sit on bus 1 (the addresses of common breakout boards). */
export const SIM_ADDRESSES = { bme280: 0x76, bh1750: 0x23, ads1115: 0x48 } as const;

export interface SimulatedHardware {
  readonly env: Environment;
  readonly gpio: SimGpioChip;
  readonly bus: SimI2cBus;
  readonly chips: { readonly bme280: Bme280Model; readonly bh1750: Bh1750Model; readonly ads1115: Ads1115Model };
  /** Pass to `createHardware({ spec: { mode: 'simulated', ... }, ports })`. */
  readonly ports: HardwarePorts;
}

/**
 * One simulated device's hardware: a seeded environment, a GPIO chip, and I2C bus 1 with a
 * BME280 (0x76), a BH1750 (0x23) and an ADS1115 (0x48) reading that environment.
 */
export function createSimulatedHardware(options: {
  seed: string | number;
  clock: Clock;
  busNumber?: number;
}): SimulatedHardware {
  const { clock } = options;
  const env = createEnvironment({ seed: options.seed });
  const gpio = new SimGpioChip({ clock });
  const bus = new SimI2cBus({ busNumber: options.busNumber ?? 1 });
  const bme280 = new Bme280Model({ clock, source: (ts) => env.at(ts) });
  const bh1750 = new Bh1750Model({ clock, lux: (ts) => env.at(ts).illuminance });
  const ads1115 = new Ads1115Model({ clock, inputs: (ts) => env.analog(ts) });
  bus.attach(SIM_ADDRESSES.bme280, bme280).attach(SIM_ADDRESSES.bh1750, bh1750).attach(SIM_ADDRESSES.ads1115, ads1115);
  return {
    env,
    gpio,
    bus,
    chips: { bme280, bh1750, ads1115 },
    ports: {
      gpio,
      i2c: (n) => {
        if (n !== bus.busNumber) return new SimI2cBus({ busNumber: n }); // an empty bus: every address NACKs
        return bus;
      },
    },
  };
}
