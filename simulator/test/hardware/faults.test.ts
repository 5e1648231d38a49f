import {
  createBh1750,
  createBme280,
  createVirtualClock,
  type SensorError,
  superviseSensor,
} from '@pifleet/device-agent';
import { describe, expect, it } from 'vitest';
import { createSimulatedHardware } from '../../src/hardware/simulated-device.js';

function rig(seed = 'faults') {
  const clock = createVirtualClock({ auto: true, start: Date.UTC(2026, 2, 1, 12) });
  const hw = createSimulatedHardware({ seed, clock });
  const backoff = { initialMs: 1000, maxMs: 8000, factor: 2 };
  const bme = superviseSensor(createBme280({ id: 'env', bus: hw.bus, clock }), { clock, backoff, stuckAfter: 5 });
  const light = superviseSensor(createBh1750({ id: 'light', bus: hw.bus, clock }), { clock, backoff });
  return { clock, hw, bme, light };
}

describe('fault injection through the supervised drivers', () => {
  it('a sensor that vanishes goes unhealthy, is retried with backoff, and recovers when it returns; others keep working', async () => {
    const { clock, hw, bme, light } = rig();
    await bme.init();
    await light.init();
    await expect(bme.read()).resolves.toHaveProperty('humidity');

    hw.bus.vanish(0x76);
    await expect(bme.read()).rejects.toMatchObject({ code: 'I2C_NACK', data: { address: 0x76 } });
    expect(bme.health()).toMatchObject({ status: 'unhealthy', failures: 1, lastError: { code: 'I2C_NACK' } });

    // Within the backoff window reads are refused without touching the bus.
    const before = hw.bus.stats();
    await expect(bme.read()).rejects.toMatchObject({ code: 'SENSOR_BACKOFF', data: { lastCode: 'I2C_NACK' } });
    expect(hw.bus.stats()).toEqual(before);
    await expect(light.read()).resolves.toHaveProperty('illuminance');

    // Retries double the delay: 1 s, 2 s, 4 s, capped at 8 s.
    const delays: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const retryAt = bme.health().retryAt ?? 0;
      await clock.advance(retryAt - clock.now());
      const failedAt = clock.now();
      await expect(bme.read()).rejects.toBeInstanceOf(Error);
      delays.push((bme.health().retryAt ?? 0) - failedAt);
    }
    expect(delays.map((d) => Math.round(d / 1000))).toEqual([2, 4, 8, 8]);
    expect(bme.health().failures).toBe(5);

    hw.bus.restore(0x76); // power-cycled: the next attempt must re-initialise it
    await clock.advance((bme.health().retryAt ?? 0) - clock.now());
    const m = await bme.read();
    expect(m).toHaveProperty('humidity');
    expect(bme.health()).toEqual({ sensor: 'env', status: 'ok', failures: 0 });
  });

  it('an absent sensor at boot starts unhealthy without throwing', async () => {
    const { hw, bme, light } = rig();
    hw.bus.vanish(0x76);
    await bme.init();
    await light.init();
    expect(bme.health().status).toBe('unhealthy');
    expect(light.health().status).toBe('ok');
  });

  it.each([
    ['injectNack', 'I2C_NACK'],
    ['injectBusError', 'I2C_BUS_ERROR'],
    ['injectTimeout', 'I2C_TIMEOUT'],
  ] as const)('a transient %s marks the sensor unhealthy once, then it recovers', async (inject, code) => {
    const { clock, hw, bme } = rig();
    await bme.init();
    hw.bus[inject](0x76, 1);
    await expect(bme.read()).rejects.toMatchObject({ code });
    await clock.advance(1000);
    await expect(bme.read()).resolves.toHaveProperty('temperature');
    expect(bme.health().status).toBe('ok');
  });

  it('a stuck chip is reported as SENSOR_STUCK after the configured repeats', async () => {
    const { clock, hw, bme } = rig();
    await bme.init();
    hw.chips.bme280.setFault('stuck');
    const codes: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      await clock.advance(2_000);
      await bme.read().then(
        () => codes.push('ok'),
        (e: SensorError) => codes.push(e.code),
      );
      if (bme.health().status === 'unhealthy') break;
    }
    expect(codes).toEqual(['ok', 'ok', 'ok', 'ok', 'SENSOR_STUCK']);
    hw.chips.bme280.setFault(undefined);
    await clock.advance(5_000);
    await expect(bme.read()).resolves.toHaveProperty('pressure');
  });

  it('out-of-range output is reported with the register and the sensor stays retried', async () => {
    const { clock, hw, bme, light } = rig();
    await bme.init();
    await light.init();
    hw.chips.bme280.setFault('out-of-range');
    await expect(bme.read()).rejects.toMatchObject({ code: 'SENSOR_OUT_OF_RANGE', data: { register: 0xfa } });
    await expect(light.read()).resolves.toHaveProperty('illuminance');
    hw.chips.bme280.setFault(undefined);
    await clock.advance(1_000);
    await expect(bme.read()).resolves.toHaveProperty('temperature');
  });

  it('notifies health changes and refuses reads after close', async () => {
    const { hw, bme } = rig();
    const seen: string[] = [];
    bme.onHealthChange((h) => seen.push(h.status));
    await bme.init();
    hw.bus.vanish(0x76);
    await bme.read().catch(() => undefined);
    expect(seen).toEqual(['ok', 'unhealthy']);
    await bme.close();
    await expect(bme.read()).rejects.toMatchObject({ code: 'SENSOR_CLOSED' });
  });
});
