import { describe, expect, it } from 'vitest';
import { type BackoffOptions, superviseSensor } from '../../src/drivers/supervisor.js';
import type { Metrics, Sensor } from '../../src/drivers/types.js';
import { I2cError, SensorError } from '../../src/hardware/errors.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';

/** A sensor whose init/read outcomes the test scripts (not a mock of a project module: a Sensor implementation). */
function scripted() {
  const state = { initOk: true, readOk: true, value: 1, inits: 0, reads: 0, closes: 0 };
  const nack = () =>
    new I2cError('I2C_NACK', 'no acknowledge', { bus: 1, address: 0x76, register: 0xd0, op: 'readByte' });
  const sensor: Sensor = {
    id: 's1',
    driver: 'fake',
    async init() {
      state.inits += 1;
      if (!state.initOk) throw nack();
    },
    async read(): Promise<Metrics> {
      state.reads += 1;
      if (!state.readOk) throw nack();
      return { v: state.value };
    },
    async close() {
      state.closes += 1;
    },
  };
  return { sensor, state };
}

describe('backoff', () => {
  it.each<[number, BackoffOptions, number]>([
    [1, {}, 1000],
    [2, {}, 2000],
    [6, {}, 32_000],
    [7, {}, 60_000],
    [20, {}, 60_000],
    [3, { initialMs: 500, factor: 3 }, 4500],
    [4, { initialMs: 100, maxMs: 500 }, 500],
  ])('failure %i with %j waits %i ms', async (failures, backoff, expected) => {
    const clock = createVirtualClock();
    const { sensor, state } = scripted();
    const s = superviseSensor(sensor, { clock, backoff });
    state.initOk = false;
    await s.init();
    while (s.health().failures < failures) {
      await clock.advance((s.health().retryAt ?? Number.NaN) - clock.now());
      await expect(s.read()).rejects.toBeInstanceOf(I2cError);
    }
    expect(s.health()).toMatchObject({ status: 'unhealthy', failures });
    expect((s.health().retryAt ?? Number.NaN) - clock.now()).toBe(expected);
  });
});

describe('sensor supervisor', () => {
  it('starts unhealthy without throwing when init fails, and retries after the backoff', async () => {
    const clock = createVirtualClock();
    const { sensor, state } = scripted();
    const s = superviseSensor(sensor, { clock });
    state.initOk = false;
    await s.init();
    expect(s.health()).toMatchObject({ status: 'unhealthy', failures: 1, lastError: { code: 'I2C_NACK' } });
    expect(s.health().retryAt).toBe(clock.now() + 1000);
    await expect(s.read()).rejects.toBeInstanceOf(SensorError);
    await expect(s.read()).rejects.toMatchObject({ code: 'SENSOR_BACKOFF' });
    expect(state.inits).toBe(1);
    state.initOk = true;
    await clock.advance(1000);
    await expect(s.read()).resolves.toEqual({ v: 1 });
    expect(state.inits).toBe(2);
    expect(state.closes).toBe(1); // closed before re-initialising
    expect(s.health()).toEqual({ sensor: 's1', status: 'ok', failures: 0 });
    expect(s.lastError()).toBeUndefined();
  });

  it('re-initialises after a failed read and passes the original error through', async () => {
    const clock = createVirtualClock();
    const { sensor, state } = scripted();
    const s = superviseSensor(sensor, { clock });
    await s.init();
    state.readOk = false;
    const err = await s.read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(I2cError);
    expect(s.lastError()).toBe(err);
    state.readOk = true;
    await clock.advance(999);
    await expect(s.read()).rejects.toMatchObject({ code: 'SENSOR_BACKOFF' });
    await clock.advance(1);
    await expect(s.read()).resolves.toEqual({ v: 1 });
    expect(state.inits).toBe(2);
  });

  it('flags identical readings as SENSOR_STUCK after stuckAfter repeats, and clears when they move', async () => {
    const clock = createVirtualClock();
    const { sensor, state } = scripted();
    const s = superviseSensor(sensor, { clock, stuckAfter: 3 });
    await s.init();
    await s.read();
    await s.read();
    await expect(s.read()).rejects.toMatchObject({ code: 'SENSOR_STUCK', data: { repeats: 3 } });
    await clock.advance(1000);
    state.value = 2;
    await expect(s.read()).resolves.toEqual({ v: 2 });
  });

  it('reports status changes once each', async () => {
    const clock = createVirtualClock();
    const { sensor, state } = scripted();
    const s = superviseSensor(sensor, { clock, backoff: { initialMs: 10 } });
    const seen: string[] = [];
    s.onHealthChange((h) => seen.push(h.status));
    await s.init();
    state.readOk = false;
    await s.read().catch(() => undefined);
    await clock.advance(10);
    await s.read().catch(() => undefined);
    state.readOk = true;
    await clock.advance(20);
    await s.read();
    expect(seen).toEqual(['ok', 'unhealthy', 'ok']);
  });
});
