import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openI2cBus } from '../../src/adapters/i2c-bus.js';
import { createOnoffGpio } from '../../src/adapters/onoff.js';
import { createBme280 } from '../../src/drivers/bme280.js';
import { createSystemClock, sleep } from '../../src/ports/clock.js';
import { describeGpioBehaviour } from '../../src/testing/gpio-behaviour.js';
import { describeI2cBehaviour } from '../../src/testing/i2c-behaviour.js';

/**
 * The port behaviour suites against the real onoff and i2c-bus adapters, on a Raspberry Pi.
 * Off by default. On a Pi:
 *
 *   PIFLEET_HW_TEST=1 PIFLEET_HW_GPIO_OUT=17 PIFLEET_HW_GPIO_IN=27 \
 *   PIFLEET_HW_I2C_BUS=1 PIFLEET_HW_BME280=0x76 npx vitest run --project device-agent test/hardware/real
 *
 * GPIO needs a jumper wire between the two lines (BCM 17 = pin 11, BCM 27 = pin 13); I2C needs
 * a BME280 at the given address. Leave a variable unset to skip that part.
 */
const env = process.env;
const enabled = env.PIFLEET_HW_TEST === '1';
const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
const outLine = num(env.PIFLEET_HW_GPIO_OUT);
const inLine = num(env.PIFLEET_HW_GPIO_IN);
const busNumber = num(env.PIFLEET_HW_I2C_BUS) ?? 1;
const bmeAddress = num(env.PIFLEET_HW_BME280);
const sysfsRoot = env.PIFLEET_HW_SYSFS_ROOT;

const api = { describe, it, beforeEach, afterEach };
const clock = createSystemClock();

describe.runIf(enabled && outLine !== undefined && inLine !== undefined)('real GPIO (onoff)', () => {
  describeGpioBehaviour(api, 'onoff', async () => ({
    gpio: createOnoffGpio(sysfsRoot ? { sysfsRoot } : {}),
    outLine: outLine ?? 17,
    inLine: inLine ?? 27,
    wait: (ms) => sleep(clock, ms),
    close: async () => undefined,
  }));
});

describe.runIf(enabled && bmeAddress !== undefined)('real I2C (i2c-bus) with a BME280', () => {
  describeI2cBehaviour(api, 'i2c-bus', async () => {
    const bus = await openI2cBus(busNumber);
    return {
      bus,
      device: {
        address: bmeAddress ?? 0x76,
        idRegister: 0xd0,
        idValue: 0x60,
        scratchRegister: 0xf5,
        scratchValues: [0x08, 0x10],
      },
      absentAddress: 0x0b,
      close: () => bus.close(),
    };
  });

  it('the BME280 driver reads plausible values', async () => {
    const bus = await openI2cBus(busNumber);
    try {
      const s = createBme280({ id: 'env', bus, clock, address: bmeAddress ?? 0x76 });
      await s.init();
      const m = await s.read();
      expect(m.temperature).toBeGreaterThan(-20);
      expect(m.temperature).toBeLessThan(60);
      expect(m.humidity).toBeGreaterThan(0);
      expect(m.pressure).toBeGreaterThan(800);
      expect(m.pressure).toBeLessThan(1100);
    } finally {
      await bus.close();
    }
  });
});

describe.runIf(!enabled)('real hardware suites', () => {
  it('are off unless PIFLEET_HW_TEST=1 (see the header of this file)', () => {
    expect(enabled).toBe(false);
  });
});
