import {
  createAds1115,
  createBh1750,
  createBme280,
  createVirtualClock,
  I2cError,
  SensorError,
} from '@pifleet/device-agent';
import { describe, expect, it } from 'vitest';
import { Ads1115Model } from '../../src/hardware/chips/ads1115-model.js';
import { Bme280Model, type Bme280Physical } from '../../src/hardware/chips/bme280-model.js';
import { SimI2cBus } from '../../src/hardware/i2c-bus.js';
import { createSimulatedHardware, SIM_ADDRESSES } from '../../src/hardware/simulated-device.js';

/** A bus with one BME280 model whose physical truth the test sets. */
function bmeRig(initial: Bme280Physical, chipId?: number) {
  const clock = createVirtualClock({ auto: true });
  let truth = initial;
  const bus = new SimI2cBus();
  const model = new Bme280Model({ clock, source: () => truth, ...(chipId === undefined ? {} : { chipId }) });
  bus.attach(0x76, model);
  return {
    clock,
    bus,
    model,
    set: (v: Bme280Physical) => {
      truth = v;
    },
  };
}

describe('BME280 driver against the register model', () => {
  // Tolerances: the driver's 0.01 °C output step; for pressure 0.5 Pa, the 0.16 Pa resolution
  // at x16 plus the gap between the datasheet's floating-point formula (the model's) and its
  // 64-bit integer formula (the driver's); 0.01 %RH for humidity (0.008 %RH resolution).
  it.each([
    { temperature: 25.08, humidity: 46.3, pressure: 1006.53 },
    { temperature: -10.5, humidity: 20, pressure: 950 },
    { temperature: 0, humidity: 80, pressure: 1013.25 },
    { temperature: 40.25, humidity: 10, pressure: 1080 },
    { temperature: -35, humidity: 95, pressure: 320 },
    { temperature: 70, humidity: 3, pressure: 700 },
  ])('decodes $temperature °C, $humidity %RH, $pressure hPa at x16 within resolution', async (truth) => {
    const { bus, clock } = bmeRig(truth);
    const s = createBme280({ id: 'env', bus, clock, oversampling: { temperature: 16, pressure: 16, humidity: 16 } });
    await s.init();
    const m = await s.read();
    expect(Math.abs((m.temperature as number) - truth.temperature)).toBeLessThanOrEqual(0.01);
    expect(Math.abs((m.humidity as number) - truth.humidity)).toBeLessThanOrEqual(0.01);
    expect(Math.abs((m.pressure as number) - truth.pressure)).toBeLessThanOrEqual(0.005);
  });

  it('decodes within the coarser x1 resolution (16 bit: 0.005 °C, 2.62 Pa)', async () => {
    const truth = { temperature: 21.37, humidity: 55.5, pressure: 998.7 };
    const { bus, clock } = bmeRig(truth);
    const s = createBme280({ id: 'env', bus, clock });
    await s.init();
    const m = await s.read();
    expect(Math.abs((m.temperature as number) - truth.temperature)).toBeLessThanOrEqual(0.01);
    expect(Math.abs((m.pressure as number) - truth.pressure)).toBeLessThanOrEqual(0.0262);
    expect(Math.abs((m.humidity as number) - truth.humidity)).toBeLessThanOrEqual(0.01);
  });

  it('checks the chip id, resets, reads calibration and writes ctrl_hum before ctrl_meas', async () => {
    const { bus, clock, model } = bmeRig({ temperature: 20, humidity: 50, pressure: 1000 });
    const s = createBme280({
      id: 'env',
      bus,
      clock,
      oversampling: { temperature: 2, pressure: 4, humidity: 8 },
      filter: 4,
    });
    await s.init();
    expect(s.calibration()).toEqual(model.calibration);
    const regs = model.writes.map((w) => w.register);
    expect(regs.slice(0, 4)).toEqual([0xe0, 0xf2, 0xf5, 0xf4]);
    expect(model.writes[0]?.value).toBe(0xb6);
    expect(model.writes[1]?.value).toBe(0b100); // osrs_h x8
    expect(model.writes[2]?.value).toBe(2 << 2); // filter 4
    expect(model.writes[3]?.value).toBe((0b010 << 5) | (0b011 << 2)); // sleep, osrs_t x2, osrs_p x4
    await s.read();
    expect(model.writes.at(-1)).toEqual({ register: 0xf4, value: (0b010 << 5) | (0b011 << 2) | 0b01 });
    expect(model.mode()).toBe(0); // back to sleep after the forced conversion
  });

  it.each([
    [0x58, /BMP280/],
    [0x55, /chip id 0x55/],
  ])('rejects chip id %i with SENSOR_WRONG_CHIP at register 0xD0', async (id, text) => {
    const { bus, clock } = bmeRig({ temperature: 20, humidity: 50, pressure: 1000 }, id);
    const err = await createBme280({ id: 'env', bus, clock })
      .init()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SensorError);
    expect(err).toMatchObject({ code: 'SENSOR_WRONG_CHIP', data: { address: 0x76, register: 0xd0, sensor: 'env' } });
    expect((err as Error).message).toMatch(text);
  });

  it('reports SENSOR_SKIPPED when the chip lost ctrl_hum (power cycle without re-init)', async () => {
    const { bus, clock } = bmeRig({ temperature: 20, humidity: 50, pressure: 1000 });
    const s = createBme280({ id: 'env', bus, clock });
    await s.init();
    bus.vanish(0x76);
    bus.restore(0x76); // comes back power-cycled: ctrl_hum = 0
    await expect(s.read()).rejects.toMatchObject({ code: 'SENSOR_SKIPPED', data: { register: 0xfd } });
  });

  it('reports SENSOR_OUT_OF_RANGE with the temperature register for an all-ones output', async () => {
    const { bus, clock, model } = bmeRig({ temperature: 20, humidity: 50, pressure: 1000 });
    const s = createBme280({ id: 'env', bus, clock });
    await s.init();
    model.setFault('out-of-range');
    await expect(s.read()).rejects.toMatchObject({
      name: 'SensorError',
      code: 'SENSOR_OUT_OF_RANGE',
      data: { address: 0x76, register: 0xfa, raw: 0xfffff },
    });
  });

  it.each([
    ['injectNack', 'I2C_NACK', 'EREMOTEIO'],
    ['injectBusError', 'I2C_BUS_ERROR', 'EIO'],
    ['injectTimeout', 'I2C_TIMEOUT', 'ETIMEDOUT'],
  ] as const)('surfaces %s as %s with bus, address and register', async (inject, code, errno) => {
    const { bus, clock } = bmeRig({ temperature: 20, humidity: 50, pressure: 1000 });
    const s = createBme280({ id: 'env', bus, clock });
    bus[inject](0x76, 1);
    const err = await s.init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(I2cError);
    expect(err).toMatchObject({ code, data: { bus: 1, address: 0x76, register: 0xd0, op: 'readByte', errno } });
    await s.init(); // the fault was one transfer: the next attempt works
    await expect(s.read()).resolves.toHaveProperty('temperature');
  });

  it('refuses to read before init', async () => {
    const { bus, clock } = bmeRig({ temperature: 20, humidity: 50, pressure: 1000 });
    await expect(createBme280({ id: 'env', bus, clock }).read()).rejects.toMatchObject({ code: 'SENSOR_NOT_READY' });
  });
});

describe('drivers against a seeded environment', () => {
  it.each(['pi-01', 'pi-02', 'greenhouse-7'])('device %s reads what its environment model says', async (seed) => {
    const clock = createVirtualClock({ auto: true, start: Date.UTC(2026, 5, 1, 13, 0) });
    const hw = createSimulatedHardware({ seed, clock });
    const bme = createBme280({
      id: 'env',
      bus: hw.bus,
      clock,
      oversampling: { temperature: 16, pressure: 16, humidity: 16 },
    });
    const light = createBh1750({ id: 'light', bus: hw.bus, clock });
    const adc = createAds1115({
      id: 'adc',
      bus: hw.bus,
      clock,
      channels: [
        { name: 'soil', input: 0, range: 4.096 },
        { name: 'ldr', input: 1, range: 4.096 },
        { name: 'ref', input: 2, range: 2.048 },
        { name: 'refMinusGnd', input: 'diff23', range: 2.048 },
      ],
    });
    for (const s of [bme, light, adc]) await s.init();
    for (let i = 0; i < 3; i += 1) {
      await clock.advance(20 * 60_000);
      const m = await bme.read();
      const truth = hw.env.at(hw.chips.bme280.lastConversionAt ?? -1);
      expect(Math.abs((m.temperature as number) - truth.temperature)).toBeLessThanOrEqual(0.01);
      expect(Math.abs((m.humidity as number) - truth.humidity)).toBeLessThanOrEqual(0.01);
      expect(Math.abs((m.pressure as number) - truth.pressure)).toBeLessThanOrEqual(0.005);

      const l = await light.read();
      const lux = hw.env.at(hw.chips.bh1750.lastMeasurementAt ?? -1).illuminance;
      expect(Math.abs((l.illuminance as number) - lux)).toBeLessThanOrEqual(0.5 / 1.2 + 0.01);

      const a = await adc.read();
      // Each channel converts at its own time; compare with the model's inputs then (1 LSB).
      const volts = hw.env.analog(hw.chips.ads1115.lastConversionAt ?? -1);
      expect(Math.abs((a.refMinusGnd as number) - (volts[2] - volts[3]))).toBeLessThanOrEqual(2.048 / 32768 + 1e-6);
      expect(a.soil as number).toBeGreaterThan(0.9);
      expect(a.soil as number).toBeLessThan(2.7);
      expect(Math.abs((a.ref as number) - 1.65)).toBeLessThan(0.002);
    }
  });

  it('gives different devices different readings and the same device the same ones', async () => {
    const at = Date.UTC(2026, 5, 1, 9, 30);
    const read = async (seed: string) => {
      const clock = createVirtualClock({ auto: true, start: at });
      const hw = createSimulatedHardware({ seed, clock });
      const s = createBme280({ id: 'env', bus: hw.bus, clock });
      await s.init();
      return s.read();
    };
    const a1 = await read('pi-01');
    const a2 = await read('pi-01');
    const b = await read('pi-02');
    expect(a2).toEqual(a1);
    expect(b).not.toEqual(a1);
  });
});

describe('ADS1115 driver against the register model', () => {
  const rig = (volts: number[]) => {
    const clock = createVirtualClock({ auto: true });
    const bus = new SimI2cBus();
    const model = new Ads1115Model({ clock, inputs: () => volts });
    bus.attach(0x48, model);
    return { clock, bus, model };
  };

  it.each([
    [0, 1.2345, 4.096],
    [1, 3.0, 4.096],
    [2, 0.1, 0.256],
    [3, 5.9, 6.144],
  ] as const)('converts AIN%i = %f V on the ±%f V range within one LSB', async (input, v, range) => {
    const volts = [0, 0, 0, 0];
    volts[input] = v;
    const { bus, clock } = rig(volts);
    const s = createAds1115({ id: 'adc', bus, clock, channels: [{ name: 'v', input, range }] });
    await s.init();
    const m = await s.read();
    expect(Math.abs((m.v as number) - v)).toBeLessThanOrEqual(range / 32768);
  });

  it('decodes negative differential inputs as signed and applies scale/offset', async () => {
    const { bus, clock } = rig([0.5, 1.5, 0, 0]);
    const s = createAds1115({
      id: 'adc',
      bus,
      clock,
      channels: [
        { name: 'diff', input: 'diff01', range: 2.048 },
        { name: 'scaled', input: 1, range: 2.048, scale: 100, offset: -50 },
      ],
    });
    await s.init();
    const m = await s.read();
    expect(m.diff as number).toBeCloseTo(-1.0, 3);
    expect(m.scaled as number).toBeCloseTo(100, 1);
  });

  it('reports a saturated input as SENSOR_OUT_OF_RANGE at the conversion register', async () => {
    const { bus, clock } = rig([3.0, 0, 0, 0]);
    const s = createAds1115({ id: 'adc', bus, clock, channels: [{ name: 'v', input: 0, range: 2.048 }] });
    await s.init();
    await expect(s.read()).rejects.toMatchObject({
      code: 'SENSOR_OUT_OF_RANGE',
      data: { address: 0x48, register: 0x00, channel: 'v', raw: 0x7fff },
    });
  });

  it('reports a chip that does not hold its threshold registers as SENSOR_WRONG_CHIP', async () => {
    const clock = createVirtualClock({ auto: true });
    const bus = new SimI2cBus();
    bus.attach(0x48, new Bme280Model({ clock, source: () => ({ temperature: 0, humidity: 0, pressure: 1000 }) }));
    await expect(
      createAds1115({ id: 'adc', bus, clock, channels: [{ name: 'v', input: 0 }] }).init(),
    ).rejects.toMatchObject({
      code: 'SENSOR_WRONG_CHIP',
      data: { address: 0x48, register: 0x02 },
    });
  });
});

describe('BH1750 driver against the model', () => {
  it('reports a saturated count as SENSOR_OUT_OF_RANGE and an absent chip as I2C_NACK', async () => {
    const clock = createVirtualClock({ auto: true });
    const hw = createSimulatedHardware({ seed: 'x', clock });
    const s = createBh1750({ id: 'light', bus: hw.bus, clock });
    await s.init();
    hw.chips.bh1750.setFault('out-of-range');
    await expect(s.read()).rejects.toMatchObject({ code: 'SENSOR_OUT_OF_RANGE', data: { address: 0x23 } });
    const other = createBh1750({ id: 'light2', bus: hw.bus, clock, address: 0x5c });
    await expect(other.init()).rejects.toMatchObject({ code: 'I2C_NACK', data: { address: 0x5c, op: 'i2cWrite' } });
  });

  it('follows the daylight cycle: noon is brighter than midnight', async () => {
    const lux = async (hourUtc: number) => {
      const clock = createVirtualClock({ auto: true, start: Date.UTC(2026, 5, 1, hourUtc) });
      const hw = createSimulatedHardware({ seed: 'sun', clock });
      const s = createBh1750({ id: 'light', bus: hw.bus, clock });
      await s.init();
      return (await s.read()).illuminance as number;
    };
    const offset = createSimulatedHardware({ seed: 'sun', clock: createVirtualClock() }).env.profile.utcOffsetHours;
    expect(await lux((12 - offset + 24) % 24)).toBeGreaterThan(50 * (await lux((0 - offset + 24) % 24)));
  });

  it('has its default address table right', () => {
    expect(SIM_ADDRESSES).toEqual({ bme280: 0x76, bh1750: 0x23, ads1115: 0x48 });
  });
});
