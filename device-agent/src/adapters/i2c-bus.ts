import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { I2cError } from '../hardware/errors.js';
import { checkI2cArgs, type I2cCallContext, i2cOpenError, toI2cError } from '../hardware/i2c-errors.js';
import { loadNative } from '../hardware/native.js';
import type { I2cBlockRead, I2cBlockWrite, I2cBus } from '../ports/i2c.js';

/**
 * The I2cBus port on the `i2c-bus` package (Linux i2c-dev). The package is loaded with a
 * dynamic import only when a bus is opened.
 */

/** The promisified bus of i2c-bus (structural; the package ships no types). */
export interface I2cBusPromisified {
  readByte(addr: number, cmd: number): Promise<number>;
  writeByte(addr: number, cmd: number, byte: number): Promise<void>;
  readWord(addr: number, cmd: number): Promise<number>;
  writeWord(addr: number, cmd: number, word: number): Promise<void>;
  readI2cBlock(addr: number, cmd: number, length: number, buffer: Buffer): Promise<I2cBlockRead>;
  writeI2cBlock(addr: number, cmd: number, length: number, buffer: Buffer): Promise<I2cBlockWrite>;
  i2cRead(addr: number, length: number, buffer: Buffer): Promise<I2cBlockRead>;
  i2cWrite(addr: number, length: number, buffer: Buffer): Promise<I2cBlockWrite>;
  close(): Promise<void>;
}

export interface I2cBusModule {
  openPromisified(busNumber: number): Promise<I2cBusPromisified>;
}

export interface OpenI2cBusOptions {
  /** Loads i2c-bus; default `import('i2c-bus')`. Tests inject a fake module. */
  readonly load?: () => Promise<unknown>;
  /** Default `process.platform`. */
  readonly platform?: string;
  /** User named in permission fixes (default `pifleet`). */
  readonly user?: string;
  /** Where the bus device files live (default `/dev`). */
  readonly devDir?: string;
}

/**
 * Wraps any promisified bus with the port's error contract: argument checks, I2cError with
 * bus/address/register on every failure, I2C_CLOSED after close. Used by the real adapter
 * and reusable by anything that speaks i2c-bus's promisified API.
 */
export function wrapI2cBus(busNumber: number, raw: I2cBusPromisified): I2cBus {
  let closed = false;
  const call = async <T>(ctx: I2cCallContext, length: number | undefined, fn: () => Promise<T>): Promise<T> => {
    if (closed) {
      throw new I2cError('I2C_CLOSED', `bus ${busNumber} is closed (${ctx.op})`, { ...ctx });
    }
    checkI2cArgs(ctx, length);
    try {
      return await fn();
    } catch (err) {
      throw toI2cError(err, ctx);
    }
  };
  const ctx = (op: string, address: number, register?: number): I2cCallContext =>
    register === undefined ? { bus: busNumber, address, op } : { bus: busNumber, address, register, op };
  return {
    busNumber,
    readByte: (a, cmd) => call(ctx('readByte', a, cmd), undefined, () => raw.readByte(a, cmd)),
    writeByte: (a, cmd, byte) => call(ctx('writeByte', a, cmd), undefined, () => raw.writeByte(a, cmd, byte & 0xff)),
    readWord: (a, cmd) => call(ctx('readWord', a, cmd), undefined, () => raw.readWord(a, cmd)),
    writeWord: (a, cmd, word) => call(ctx('writeWord', a, cmd), undefined, () => raw.writeWord(a, cmd, word & 0xffff)),
    readI2cBlock: (a, cmd, len, buf) =>
      call(ctx('readI2cBlock', a, cmd), len, () => raw.readI2cBlock(a, cmd, len, buf)),
    writeI2cBlock: (a, cmd, len, buf) =>
      call(ctx('writeI2cBlock', a, cmd), len, () => raw.writeI2cBlock(a, cmd, len, buf)),
    i2cRead: (a, len, buf) => call(ctx('i2cRead', a), len, () => raw.i2cRead(a, len, buf)),
    i2cWrite: (a, len, buf) => call(ctx('i2cWrite', a), len, () => raw.i2cWrite(a, len, buf)),
    async close() {
      if (closed) return;
      closed = true;
      try {
        await raw.close();
      } catch (err) {
        throw toI2cError(err, { bus: busNumber, address: 0, op: 'close' });
      }
    },
  };
}

/** Module specifier kept in a variable: the optional package ships no types. */
const I2C_BUS: string = 'i2c-bus';

/** Opens `/dev/i2c-{busNumber}` through i2c-bus. Failures name the fix (enable I2C, i2c group). */
export async function openI2cBus(busNumber: number, options: OpenI2cBusOptions = {}): Promise<I2cBus> {
  const mod = await loadNative<I2cBusModule>(
    'i2c-bus',
    options.load ?? (() => import(I2C_BUS)),
    options.platform ?? process.platform,
  );
  let raw: I2cBusPromisified;
  try {
    // i2c-bus opens the device file lazily on the first transfer; check it up front so a
    // disabled bus or a missing group membership is reported at start, with its fix.
    await access(`${options.devDir ?? '/dev'}/i2c-${busNumber}`, constants.R_OK | constants.W_OK);
    raw = await mod.openPromisified(busNumber);
  } catch (err) {
    throw i2cOpenError(err, busNumber, options.user);
  }
  return wrapI2cBus(busNumber, raw);
}
