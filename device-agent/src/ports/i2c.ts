/**
 * I2C port: the promisified subset of the `i2c-bus` package the drivers need, with the same
 * names and argument order, so the real adapter is a thin translation.
 *
 * - `cmd` is the register (SMBus "command") byte.
 * - Words are SMBus words: little-endian (low byte from `cmd`, high byte from `cmd + 1`).
 *   Chips with big-endian 16-bit registers (ADS1115, BH1750) use the block or plain calls.
 * - Addresses are 7-bit (0x00–0x7F).
 *
 * Every failure rejects with an `I2cError` whose `data` names the bus, address, register and
 * operation: `I2C_NACK` (nothing acknowledged at that address: absent, unpowered or miswired),
 * `I2C_BUS_ERROR`, `I2C_TIMEOUT`, `I2C_CLOSED`, `I2C_BAD_ARGUMENT`.
 */

export interface I2cBlockRead {
  readonly bytesRead: number;
  readonly buffer: Buffer;
}

export interface I2cBlockWrite {
  readonly bytesWritten: number;
  readonly buffer: Buffer;
}

export interface I2cBus {
  /** Bus number (`/dev/i2c-N`). */
  readonly busNumber: number;
  readByte(address: number, cmd: number): Promise<number>;
  writeByte(address: number, cmd: number, byte: number): Promise<void>;
  readWord(address: number, cmd: number): Promise<number>;
  writeWord(address: number, cmd: number, word: number): Promise<void>;
  /** Reads `length` (1–32) bytes starting at register `cmd` into `buffer`. */
  readI2cBlock(address: number, cmd: number, length: number, buffer: Buffer): Promise<I2cBlockRead>;
  /** Writes `length` (1–32) bytes of `buffer` starting at register `cmd`. */
  writeI2cBlock(address: number, cmd: number, length: number, buffer: Buffer): Promise<I2cBlockWrite>;
  /** Plain I2C read transaction of `length` bytes (no register byte). */
  i2cRead(address: number, length: number, buffer: Buffer): Promise<I2cBlockRead>;
  /** Plain I2C write transaction of `length` bytes. */
  i2cWrite(address: number, length: number, buffer: Buffer): Promise<I2cBlockWrite>;
  /** Closes the bus; later calls reject with `I2C_CLOSED`. Idempotent. */
  close(): Promise<void>;
}
