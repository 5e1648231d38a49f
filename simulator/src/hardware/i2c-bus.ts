import {
  checkI2cArgs,
  type I2cBlockRead,
  type I2cBlockWrite,
  type I2cBus,
  type I2cCallContext,
  I2cError,
  toI2cError,
} from '@pifleet/device-agent';

/**
 * A device on the simulated bus, at the transaction level: what a chip does with one I2C
 * write (the bytes after its address) and one I2C read. SMBus calls are built from these
 * exactly as the kernel's i2c-dev does on a real bus (register byte written, then read).
 */
export interface I2cDeviceModel {
  write(data: Uint8Array): void;
  read(length: number): Uint8Array;
  /** Power-on reset (the device lost power and came back). */
  powerCycle?(): void;
}

/** An OS-style errno error, shaped like the ones i2c-bus's native addon throws. */
export function errnoError(code: string, errno: number, text: string, syscall: string): Error {
  return Object.assign(new Error(`${code}, ${text}`), { code, errno: -errno, syscall });
}

type FaultKind = 'nack' | 'bus-error' | 'timeout';
interface Fault {
  kind: FaultKind;
  remaining: number;
}

export interface SimI2cBusStats {
  /** Transactions (write or read phases) that reached an acknowledging device. */
  readonly transfers: number;
  /** Transactions that failed (NACK or injected fault). */
  readonly failures: number;
}

/**
 * A simulated I2C bus implementing the `I2cBus` port: chip models attached at addresses, an
 * unknown or vanished address NACKs with EREMOTEIO like the Pi's i2c controller, and faults
 * can be injected per address. Failures surface as the port's typed `I2cError`s, mapped from
 * errno-style errors by the same function the real adapter uses.
 */
export class SimI2cBus implements I2cBus {
  readonly busNumber: number;
  readonly #devices = new Map<number, I2cDeviceModel>();
  readonly #vanished = new Set<number>();
  readonly #faults = new Map<number, Fault[]>();
  #closed = false;
  #transfers = 0;
  #failures = 0;

  constructor(options: { busNumber?: number } = {}) {
    this.busNumber = options.busNumber ?? 1;
  }

  /** Attaches a chip model at a 7-bit address. */
  attach(address: number, device: I2cDeviceModel): this {
    this.#devices.set(address, device);
    return this;
  }

  detach(address: number): void {
    this.#devices.delete(address);
  }

  device(address: number): I2cDeviceModel | undefined {
    return this.#devices.get(address);
  }

  /** The device stops answering (unplugged, lost power): every transfer NACKs until {@link restore}. */
  vanish(address: number): void {
    this.#vanished.add(address);
  }

  /** The device answers again; by default it comes back power-cycled (configuration lost). */
  restore(address: number, options: { powerCycle?: boolean } = {}): void {
    this.#vanished.delete(address);
    if (options.powerCycle ?? true) this.#devices.get(address)?.powerCycle?.();
  }

  /** The next `times` transfers to `address` NACK (EREMOTEIO). */
  injectNack(address: number, times = 1): void {
    this.#addFault(address, 'nack', times);
  }

  /** The next `times` transfers to `address` fail with a bus error (EIO). */
  injectBusError(address: number, times = 1): void {
    this.#addFault(address, 'bus-error', times);
  }

  /** The next `times` transfers to `address` time out (ETIMEDOUT, SDA held low). */
  injectTimeout(address: number, times = 1): void {
    this.#addFault(address, 'timeout', times);
  }

  /** Removes injected faults (for one address or all) and restores vanished devices. */
  clearFaults(address?: number): void {
    if (address === undefined) {
      this.#faults.clear();
      this.#vanished.clear();
    } else {
      this.#faults.delete(address);
      this.#vanished.delete(address);
    }
  }

  stats(): SimI2cBusStats {
    return { transfers: this.#transfers, failures: this.#failures };
  }

  #addFault(address: number, kind: FaultKind, times: number): void {
    const list = this.#faults.get(address) ?? [];
    list.push({ kind, remaining: times });
    this.#faults.set(address, list);
  }

  /** Resolves the device for one transaction or throws the errno error a real bus would. */
  #select(address: number, syscall: string): I2cDeviceModel {
    const fault = this.#faults.get(address)?.find((f) => f.remaining > 0);
    if (fault) {
      fault.remaining -= 1;
      this.#failures += 1;
      if (fault.kind === 'bus-error') throw errnoError('EIO', 5, 'i/o error', syscall);
      if (fault.kind === 'timeout') throw errnoError('ETIMEDOUT', 110, 'connection timed out', syscall);
      throw errnoError('EREMOTEIO', 121, 'remote I/O error', syscall);
    }
    const device = this.#devices.get(address);
    if (!device || this.#vanished.has(address)) {
      this.#failures += 1;
      throw errnoError('EREMOTEIO', 121, 'remote I/O error', syscall);
    }
    this.#transfers += 1;
    return device;
  }

  async #run<T>(ctx: I2cCallContext, length: number | undefined, fn: () => T): Promise<T> {
    if (this.#closed) throw new I2cError('I2C_CLOSED', `bus ${this.busNumber} is closed (${ctx.op})`, { ...ctx });
    checkI2cArgs(ctx, length);
    await Promise.resolve(); // transfers complete asynchronously, as on a real bus
    try {
      return fn();
    } catch (err) {
      throw toI2cError(err, ctx);
    }
  }

  #ctx(op: string, address: number, register?: number): I2cCallContext {
    return register === undefined
      ? { bus: this.busNumber, address, op }
      : { bus: this.busNumber, address, register, op };
  }

  #writeThenRead(address: number, cmd: number, length: number): Uint8Array {
    this.#select(address, 'write').write(Uint8Array.of(cmd));
    return this.#select(address, 'read').read(length);
  }

  readByte(address: number, cmd: number): Promise<number> {
    return this.#run(
      this.#ctx('readByte', address, cmd),
      undefined,
      () => this.#writeThenRead(address, cmd, 1)[0] ?? 0xff,
    );
  }

  writeByte(address: number, cmd: number, byte: number): Promise<void> {
    return this.#run(this.#ctx('writeByte', address, cmd), undefined, () => {
      this.#select(address, 'write').write(Uint8Array.of(cmd, byte & 0xff));
    });
  }

  readWord(address: number, cmd: number): Promise<number> {
    return this.#run(this.#ctx('readWord', address, cmd), undefined, () => {
      const d = this.#writeThenRead(address, cmd, 2);
      return (d[0] ?? 0xff) | ((d[1] ?? 0xff) << 8);
    });
  }

  writeWord(address: number, cmd: number, word: number): Promise<void> {
    return this.#run(this.#ctx('writeWord', address, cmd), undefined, () => {
      this.#select(address, 'write').write(Uint8Array.of(cmd, word & 0xff, (word >> 8) & 0xff));
    });
  }

  readI2cBlock(address: number, cmd: number, length: number, buffer: Buffer): Promise<I2cBlockRead> {
    return this.#run(this.#ctx('readI2cBlock', address, cmd), length, () => {
      const d = this.#writeThenRead(address, cmd, length);
      buffer.set(d.subarray(0, length));
      return { bytesRead: length, buffer };
    });
  }

  writeI2cBlock(address: number, cmd: number, length: number, buffer: Buffer): Promise<I2cBlockWrite> {
    return this.#run(this.#ctx('writeI2cBlock', address, cmd), length, () => {
      const data = new Uint8Array(length + 1);
      data[0] = cmd;
      data.set(buffer.subarray(0, length), 1);
      this.#select(address, 'write').write(data);
      return { bytesWritten: length, buffer };
    });
  }

  i2cRead(address: number, length: number, buffer: Buffer): Promise<I2cBlockRead> {
    return this.#run(this.#ctx('i2cRead', address), length, () => {
      const d = this.#select(address, 'read').read(length);
      buffer.set(d.subarray(0, length));
      return { bytesRead: length, buffer };
    });
  }

  i2cWrite(address: number, length: number, buffer: Buffer): Promise<I2cBlockWrite> {
    return this.#run(this.#ctx('i2cWrite', address), length, () => {
      this.#select(address, 'write').write(Uint8Array.from(buffer.subarray(0, length)));
      return { bytesWritten: length, buffer };
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
