import { createVirtualClock, describeGpioBehaviour, describeI2cBehaviour } from '@pifleet/device-agent';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { Bme280Model } from '../../src/hardware/chips/bme280-model.js';
import { SimGpioChip } from '../../src/hardware/gpio-chip.js';
import { SimI2cBus } from '../../src/hardware/i2c-bus.js';

const api = { describe, it, beforeEach, afterEach };

// The port behaviour suites from @pifleet/device-agent, run against the simulated adapters.
// On a Pi the same suites run against onoff and i2c-bus (device-agent/test/hardware/real-hardware.test.ts).

describeGpioBehaviour(api, 'simulated chip', async () => {
  const clock = createVirtualClock();
  const gpio = new SimGpioChip({ clock });
  gpio.wire(17, 27);
  return { gpio, outLine: 17, inLine: 27, wait: (ms) => clock.advance(ms), close: async () => undefined };
});

describeI2cBehaviour(api, 'simulated bus with a BME280 model', async () => {
  const clock = createVirtualClock();
  const bus = new SimI2cBus({ busNumber: 1 });
  bus.attach(0x76, new Bme280Model({ clock, source: () => ({ temperature: 20, humidity: 50, pressure: 1000 }) }));
  return {
    bus,
    device: { address: 0x76, idRegister: 0xd0, idValue: 0x60, scratchRegister: 0xf5, scratchValues: [0x08, 0x10] },
    absentAddress: 0x40,
    close: () => bus.close(),
  };
});
