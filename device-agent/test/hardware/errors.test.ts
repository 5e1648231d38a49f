import { describe, expect, it } from 'vitest';
import { HardwareUnavailableError, I2cError } from '../../src/hardware/errors.js';
import { errnoName, i2cOpenError, toI2cError } from '../../src/hardware/i2c-errors.js';
import { loadNative } from '../../src/hardware/native.js';
import { hardwareSpecSchema } from '../../src/hardware/spec.js';

describe('hardware errors', () => {
  it.each([
    [{ code: 'EREMOTEIO' }, 'EREMOTEIO'],
    [{ errno: -121 }, 'EREMOTEIO'],
    [{ errno: 6 }, 'ENXIO'],
    [new Error('EIO, i/o error'), 'EIO'],
    [new Error('something else'), undefined],
    ['string', undefined],
    [null, undefined],
  ])('errnoName(%o) = %s', (err, name) => {
    expect(errnoName(err)).toBe(name);
  });

  it('keeps an I2cError as it is', () => {
    const e = new I2cError('I2C_NACK', 'x', { bus: 1, address: 1, op: 'readByte' });
    expect(toI2cError(e, { bus: 2, address: 2, op: 'other' })).toBe(e);
  });

  it('maps unknown failures to I2C_BUS_ERROR with the context', () => {
    const e = toI2cError(new Error('weird'), { bus: 1, address: 0x48, register: 1, op: 'readI2cBlock' });
    expect(e).toMatchObject({ code: 'I2C_BUS_ERROR', data: { address: 0x48, register: 1 } });
  });

  it('names the fix for other buses than 1', () => {
    expect(i2cOpenError({ code: 'ENOENT' }, 3).message).toMatch(/dtoverlay/);
  });

  it('carries fix, code and exit code; message is one line', () => {
    const e = new HardwareUnavailableError('HW_I2C_PERMISSION', 'no permission', 'join the group');
    expect(e).toMatchObject({ name: 'HardwareUnavailableError', fix: 'join the group', exitCode: 77 });
    expect(e.message).toBe('no permission; fix: join the group');
    expect(e.data.fix).toBe('join the group');
  });

  it('loadNative unwraps CommonJS default exports', async () => {
    const m = await loadNative<{ x: number }>('thing', async () => ({ default: { x: 1 } }), 'linux');
    expect(m.x).toBe(1);
  });
});

describe('hardware spec', () => {
  it('defaults to no hardware', () => {
    expect(hardwareSpecSchema.parse({})).toEqual({
      mode: 'none',
      gpio: {},
      i2cBus: 1,
      sensors: [],
      outputs: [],
      backoff: {},
    });
  });

  it('fills driver defaults', () => {
    const spec = hardwareSpecSchema.parse({
      mode: 'real',
      sensors: [
        { id: 'env', driver: 'bme280' },
        { id: 'b', driver: 'digital-input', line: 17 },
      ],
      outputs: [{ id: 'relay', line: 23 }],
    });
    expect(spec.sensors[0]).toEqual({ id: 'env', driver: 'bme280', address: 0x76, stuckAfter: 20 });
    expect(spec.sensors[1]).toEqual({ id: 'b', driver: 'digital-input', line: 17, debounceMs: 20, activeLow: false });
    expect(spec.outputs[0]).toEqual({
      id: 'relay',
      driver: 'digital-output',
      line: 23,
      activeLow: false,
      initial: false,
    });
  });
});
