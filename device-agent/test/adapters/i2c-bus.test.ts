import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type I2cBusPromisified, openI2cBus, wrapI2cBus } from '../../src/adapters/i2c-bus.js';
import { HardwareUnavailableError, I2cError } from '../../src/hardware/errors.js';

const errno = (code: string, n: number) => Object.assign(new Error(`${code}, failed`), { code, errno: -n });

/** A promisified bus whose every call fails with `err` (or succeeds with 0x60). */
function rawBus(err?: unknown): I2cBusPromisified & { calls: number } {
  const r = async () => {
    raw.calls += 1;
    if (err) throw err;
    return 0x60;
  };
  const raw = {
    calls: 0,
    readByte: r,
    writeByte: async () => {
      await r();
    },
    readWord: r,
    writeWord: async () => {
      await r();
    },
    readI2cBlock: async (_a: number, _c: number, l: number, b: Buffer) => {
      await r();
      return { bytesRead: l, buffer: b };
    },
    writeI2cBlock: async (_a: number, _c: number, l: number, b: Buffer) => {
      await r();
      return { bytesWritten: l, buffer: b };
    },
    i2cRead: async (_a: number, l: number, b: Buffer) => {
      await r();
      return { bytesRead: l, buffer: b };
    },
    i2cWrite: async (_a: number, l: number, b: Buffer) => {
      await r();
      return { bytesWritten: l, buffer: b };
    },
    close: async () => undefined,
  };
  return raw;
}

describe('i2c-bus adapter error mapping', () => {
  it.each([
    [errno('EREMOTEIO', 121), 'I2C_NACK', 'EREMOTEIO'],
    [errno('ENXIO', 6), 'I2C_NACK', 'ENXIO'],
    [{ errno: -121, message: 'Remote I/O error' }, 'I2C_NACK', 'EREMOTEIO'],
    [errno('EIO', 5), 'I2C_BUS_ERROR', 'EIO'],
    [errno('EAGAIN', 11), 'I2C_BUS_ERROR', 'EAGAIN'],
    [errno('ETIMEDOUT', 110), 'I2C_TIMEOUT', 'ETIMEDOUT'],
    [new Error('Invalid I2C address 200'), 'I2C_BAD_ARGUMENT', undefined],
  ])('maps %o to %s with bus, address and register', async (raw, code, name) => {
    const bus = wrapI2cBus(1, rawBus(raw));
    const err = await bus.readByte(0x76, 0xd0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(I2cError);
    expect(err).toMatchObject({ code, data: { bus: 1, address: 0x76, register: 0xd0, op: 'readByte' } });
    expect((err as I2cError).data.errno).toBe(name);
    expect((err as Error).message).toContain('0x76');
    expect((err as Error).message).toContain('0xD0');
    expect((err as Error).cause).toBe(raw);
  });

  it('omits the register for plain transfers', async () => {
    const bus = wrapI2cBus(1, rawBus(errno('EREMOTEIO', 121)));
    const err = (await bus.i2cRead(0x23, 2, Buffer.alloc(2)).catch((e: unknown) => e)) as I2cError;
    expect(err.data).toEqual({ bus: 1, address: 0x23, op: 'i2cRead', errno: 'EREMOTEIO' });
  });

  it.each([
    ['address', (b: ReturnType<typeof wrapI2cBus>) => b.readByte(0x80, 0)],
    ['register', (b: ReturnType<typeof wrapI2cBus>) => b.writeByte(0x76, 256, 0)],
    ['length', (b: ReturnType<typeof wrapI2cBus>) => b.readI2cBlock(0x76, 0, 40, Buffer.alloc(40))],
  ])('rejects a bad %s before touching the bus', async (_what, call) => {
    const raw = rawBus();
    await expect(call(wrapI2cBus(1, raw))).rejects.toMatchObject({ code: 'I2C_BAD_ARGUMENT' });
    expect(raw.calls).toBe(0);
  });

  it('passes results through and refuses calls after close', async () => {
    const raw = rawBus();
    const bus = wrapI2cBus(3, raw);
    await expect(bus.readByte(0x76, 0xd0)).resolves.toBe(0x60);
    await bus.close();
    await expect(bus.readWord(0x76, 0xd0)).rejects.toMatchObject({ code: 'I2C_CLOSED', data: { bus: 3 } });
    expect(raw.calls).toBe(1);
  });
});

describe('opening a bus', () => {
  const devDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-dev-'));
  fs.writeFileSync(path.join(devDir, 'i2c-1'), '');
  afterAll(() => fs.rmSync(devDir, { recursive: true, force: true }));
  const moduleWith = (openPromisified: (n: number) => Promise<I2cBusPromisified>) => async () => ({ openPromisified });

  it.each([
    ['ENOENT', 'HW_I2C_DISABLED', 'sudo raspi-config nonint do_i2c 0', 69],
    ['EACCES', 'HW_I2C_PERMISSION', 'sudo usermod -aG i2c pifleet', 77],
  ] as const)('maps %s to %s naming the fix', async (code, expected, fix, exit) => {
    const load = moduleWith(async () => {
      throw Object.assign(new Error(`${code}, open '/dev/i2c-1'`), { code });
    });
    const err = await openI2cBus(1, { load, platform: 'linux', devDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HardwareUnavailableError);
    expect(err).toMatchObject({ code: expected, exitCode: exit, data: { bus: 1 } });
    expect((err as Error).message).toContain(fix);
  });

  it('reports a missing device file before any transfer', async () => {
    const load = moduleWith(async () => rawBus());
    await expect(openI2cBus(2, { load, platform: 'linux', devDir })).rejects.toMatchObject({
      code: 'HW_I2C_DISABLED',
      data: { bus: 2, errno: 'ENOENT' },
    });
    const bus = await openI2cBus(1, { load, platform: 'linux', devDir });
    await expect(bus.readByte(0x76, 0xd0)).resolves.toBe(0x60);
  });

  it('does not load i2c-bus off Linux', async () => {
    let loaded = false;
    const load = async () => {
      loaded = true;
      return {};
    };
    await expect(openI2cBus(1, { load, platform: 'win32' })).rejects.toMatchObject({ code: 'HW_NOT_A_PI' });
    expect(loaded).toBe(false);
  });

  it.runIf(process.platform === 'linux' && !fs.existsSync('/dev/i2c-99'))(
    'with the real i2c-bus package and a bus that does not exist: HW_I2C_DISABLED, one line',
    async () => {
      const err = await openI2cBus(99).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'HW_I2C_DISABLED', data: { bus: 99, errno: 'ENOENT' } });
      expect((err as Error).message).not.toContain('\n');
    },
  );
});
