import assert from 'node:assert/strict';
import { I2cError } from '../hardware/errors.js';
import type { I2cBus } from '../ports/i2c.js';
import type { TestApi } from './test-api.js';

/**
 * What an I2C adapter under test provides: a bus with one known device on it (a BME280 on a
 * Pi, or the simulator's model) and an address where nothing answers.
 */
export interface I2cFixture {
  readonly bus: I2cBus;
  readonly device: {
    readonly address: number;
    /** A read-only identification register and its value (BME280: 0xD0 → 0x60). */
    readonly idRegister: number;
    readonly idValue: number;
    /** A register safe to write and read back (BME280: config 0xF5 in sleep mode) and two values for it. */
    readonly scratchRegister: number;
    readonly scratchValues: readonly [number, number];
  };
  /** An address with no device. */
  readonly absentAddress: number;
  close(): Promise<void>;
}

export type I2cFixtureFactory = () => Promise<I2cFixture>;

const isI2c = (code: string) => (e: unknown) => e instanceof I2cError && e.code === code;

/** The behaviour every `I2cBus` adapter must have. */
export function describeI2cBehaviour(t: TestApi, name: string, factory: I2cFixtureFactory): void {
  t.describe(`I2cBus behaviour: ${name}`, () => {
    let f: I2cFixture;
    t.beforeEach(async () => {
      f = await factory();
    });
    t.afterEach(async () => {
      await f.close();
    });

    t.it('reads the identification register with readByte and readI2cBlock alike', async () => {
      const { address, idRegister, idValue } = f.device;
      assert.equal(await f.bus.readByte(address, idRegister), idValue);
      const buf = Buffer.alloc(1);
      const r = await f.bus.readI2cBlock(address, idRegister, 1, buf);
      assert.equal(r.bytesRead, 1);
      assert.equal(buf[0], idValue);
    });

    t.it('selects a register with i2cWrite and reads it with i2cRead', async () => {
      const { address, idRegister, idValue } = f.device;
      await f.bus.i2cWrite(address, 1, Buffer.from([idRegister]));
      const buf = Buffer.alloc(1);
      const r = await f.bus.i2cRead(address, 1, buf);
      assert.equal(r.bytesRead, 1);
      assert.equal(buf[0], idValue);
    });

    t.it('readWord is the SMBus little-endian pair of two registers', async () => {
      const { address, idRegister } = f.device;
      const lo = await f.bus.readByte(address, idRegister);
      const hi = await f.bus.readByte(address, idRegister + 1);
      assert.equal(await f.bus.readWord(address, idRegister), lo | (hi << 8));
    });

    t.it('writes a register and reads it back', async () => {
      const { address, scratchRegister, scratchValues } = f.device;
      const before = await f.bus.readByte(address, scratchRegister);
      try {
        for (const v of scratchValues) {
          await f.bus.writeByte(address, scratchRegister, v);
          assert.equal(await f.bus.readByte(address, scratchRegister), v);
        }
        await f.bus.writeI2cBlock(address, scratchRegister, 1, Buffer.from([scratchValues[0]]));
        const buf = Buffer.alloc(1);
        await f.bus.readI2cBlock(address, scratchRegister, 1, buf);
        assert.equal(buf[0], scratchValues[0]);
      } finally {
        await f.bus.writeByte(address, scratchRegister, before);
      }
    });

    t.it('rejects with I2C_NACK naming bus, address and register when nothing answers', async () => {
      await assert.rejects(f.bus.readByte(f.absentAddress, 0x10), (e: unknown) => {
        assert.ok(isI2c('I2C_NACK')(e), String(e));
        const err = e as I2cError;
        assert.equal(err.data.address, f.absentAddress);
        assert.equal(err.data.register, 0x10);
        assert.equal(err.data.bus, f.bus.busNumber);
        assert.match(err.message, /0x[0-9A-F]{2}/);
        return true;
      });
      await assert.rejects(f.bus.i2cRead(f.absentAddress, 2, Buffer.alloc(2)), isI2c('I2C_NACK'));
    });

    t.it('rejects invalid addresses, registers and lengths with I2C_BAD_ARGUMENT', async () => {
      await assert.rejects(f.bus.readByte(0x80, 0), isI2c('I2C_BAD_ARGUMENT'));
      await assert.rejects(f.bus.readByte(f.device.address, 0x100), isI2c('I2C_BAD_ARGUMENT'));
      await assert.rejects(f.bus.readI2cBlock(f.device.address, 0, 33, Buffer.alloc(33)), isI2c('I2C_BAD_ARGUMENT'));
    });

    t.it('rejects every call with I2C_CLOSED after close', async () => {
      await f.bus.close();
      await f.bus.close(); // idempotent
      await assert.rejects(f.bus.readByte(f.device.address, f.device.idRegister), isI2c('I2C_CLOSED'));
      await assert.rejects(f.bus.i2cWrite(f.device.address, 1, Buffer.from([0])), isI2c('I2C_CLOSED'));
    });
  });
}
