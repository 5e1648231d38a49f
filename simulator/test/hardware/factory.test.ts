import { createHardware, createVirtualClock, type HardwareSpecInput, hardwareSpecSchema } from '@pifleet/device-agent';
import { describe, expect, it } from 'vitest';
import { createSimulatedHardware } from '../../src/hardware/simulated-device.js';

const SPEC: HardwareSpecInput = {
  mode: 'simulated',
  sensors: [
    { id: 'env', driver: 'bme280' },
    { id: 'light', driver: 'bh1750' },
    { id: 'adc', driver: 'ads1115', channels: [{ name: 'soil', input: 0 }] },
    { id: 'door', driver: 'digital-input', line: 17, activeLow: true },
    { id: 'far', driver: 'bme280', bus: 3 }, // nothing on bus 3
  ],
  outputs: [{ id: 'relay', line: 23, activeLow: true }],
};

describe('createHardware in simulated mode', () => {
  it('builds supervised drivers from the spec; a missing sensor is unhealthy and the rest work', async () => {
    const clock = createVirtualClock({ auto: true });
    const sim = createSimulatedHardware({ seed: 'pi-01', clock });
    sim.gpio.drive(17, 1); // door closed: reed switch open, pull-up high
    const hw = createHardware({ spec: SPEC, clock, ports: sim.ports });
    await hw.start();

    expect(hw.sensors.map((s) => [s.id, s.health().status])).toEqual([
      ['env', 'ok'],
      ['light', 'ok'],
      ['adc', 'ok'],
      ['door', 'ok'],
      ['far', 'unhealthy'],
    ]);
    expect(hw.sensors[4]?.health().lastError?.code).toBe('I2C_NACK');

    const [env, light, adc, door] = hw.sensors;
    await expect(env?.read()).resolves.toMatchObject({ temperature: expect.any(Number), pressure: expect.any(Number) });
    await expect(light?.read()).resolves.toHaveProperty('illuminance');
    await expect(adc?.read()).resolves.toHaveProperty('soil');
    await expect(door?.read()).resolves.toEqual({ state: false, count: 0 });

    // The relay is active-low and starts off: pin high.
    expect(sim.gpio.level(23)).toBe(1);
    await hw.outputs[0]?.set(true);
    expect(sim.gpio.level(23)).toBe(0);

    const events: boolean[] = [];
    hw.inputs[0]?.onEvent((e) => events.push(e.state));
    sim.gpio.drive(17, 0);
    await clock.advance(25);
    expect(events).toEqual([true]);

    await hw.stop();
    expect(sim.gpio.claimed()).toEqual([]);
  });

  it('never loads the real adapters outside mode real', async () => {
    const clock = createVirtualClock({ auto: true });
    const sim = createSimulatedHardware({ seed: 'pi-02', clock });
    const boom = async () => {
      throw new Error('native module loaded');
    };
    const hw = createHardware({ spec: SPEC, clock, ports: sim.ports, real: { loadOnoff: boom, loadI2cBus: boom } });
    await hw.start();
    await hw.stop();
    const none = createHardware({ spec: {}, clock, real: { loadOnoff: boom, loadI2cBus: boom } });
    await none.start();
    expect(none.sensors).toEqual([]);
  });

  it.each([
    [{ mode: 'none', sensors: [{ id: 'a', driver: 'bh1750' }] }, 'mode'],
    [{ sensors: [{ id: 'a', driver: 'digital-input', line: 40 }] }, 'sensors.0.line'],
    [{ sensors: [{ id: 'a', driver: 'bme280', address: 0x40 }] }, 'sensors.0.address'],
    [
      {
        mode: 'simulated',
        sensors: [{ id: 'a', driver: 'digital-input', line: 5 }],
        outputs: [{ id: 'b', line: 5 }],
      },
      'outputs.0.line',
    ],
    [
      {
        mode: 'simulated',
        sensors: [
          { id: 'a', driver: 'bh1750' },
          { id: 'a', driver: 'bme280' },
        ],
      },
      'sensors.1.id',
    ],
    [{ sensors: [{ id: 'adc', driver: 'ads1115', channels: [] }] }, 'sensors.0.channels'],
  ])('rejects an invalid spec %j at %s', (spec, path) => {
    const r = hardwareSpecSchema.safeParse(spec);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});
