import { HardwareUnavailableError, hex, I2cError, type I2cErrorCode } from './errors.js';

/** Where an I2C call was made: filled in by the adapter for every operation. */
export interface I2cCallContext {
  readonly bus: number;
  readonly address: number;
  readonly register?: number;
  readonly op: string;
}

/** The errno-style shape Node and the i2c-bus native addon attach to OS errors. */
interface ErrnoLike {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
}

const NACK_CODES = new Set(['EREMOTEIO', 'ENXIO']);
const BUS_CODES = new Set(['EIO', 'EAGAIN', 'EPROTO', 'EBUSY']);

/** Linux errno numbers for the codes above, for native errors that carry only a number. */
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  5: 'EIO',
  6: 'ENXIO',
  11: 'EAGAIN',
  16: 'EBUSY',
  71: 'EPROTO',
  110: 'ETIMEDOUT',
  121: 'EREMOTEIO',
};

/** The errno name of an OS error (`EREMOTEIO`), or undefined for other errors. */
export function errnoName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as ErrnoLike;
  if (typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) return e.code;
  if (typeof e.errno === 'number') return ERRNO_NAMES[Math.abs(e.errno)];
  if (typeof e.message === 'string') {
    const m = /^(E[A-Z0-9]+)[,:]/.exec(e.message);
    if (m) return m[1];
  }
  return undefined;
}

function where(ctx: I2cCallContext): string {
  const reg = ctx.register === undefined ? '' : ` register ${hex(ctx.register)}`;
  return `${ctx.op} at ${hex(ctx.address)}${reg} on bus ${ctx.bus}`;
}

/**
 * Maps whatever an I2C transfer threw (an errno error from the kernel via i2c-bus, or the
 * simulator's equivalent) to a typed {@link I2cError} carrying bus, address and register.
 * An I2cError passes through unchanged.
 */
export function toI2cError(err: unknown, ctx: I2cCallContext): I2cError {
  if (err instanceof I2cError) return err;
  const errno = errnoName(err);
  const data = { ...ctx, ...(errno === undefined ? {} : { errno }) };
  let code: I2cErrorCode;
  let text: string;
  if (errno !== undefined && NACK_CODES.has(errno)) {
    code = 'I2C_NACK';
    text = `no acknowledge: ${where(ctx)} (${errno}); check wiring, power and address (i2cdetect -y ${ctx.bus})`;
  } else if (errno === 'ETIMEDOUT') {
    code = 'I2C_TIMEOUT';
    text = `timed out: ${where(ctx)}; a device may be holding SDA low, power-cycle it`;
  } else if (errno !== undefined && BUS_CODES.has(errno)) {
    code = 'I2C_BUS_ERROR';
    text = `bus error: ${where(ctx)} (${errno})`;
  } else if (err instanceof RangeError || (err instanceof Error && /^Invalid /.test(err.message))) {
    code = 'I2C_BAD_ARGUMENT';
    text = `invalid argument: ${where(ctx)}: ${err.message}`;
  } else {
    code = 'I2C_BUS_ERROR';
    text = `failed: ${where(ctx)}${errno === undefined ? '' : ` (${errno})`}`;
  }
  return new I2cError(code, text, data, { cause: err });
}

/** Throws I2C_BAD_ARGUMENT unless `address` is a 7-bit address and `register` a byte. */
export function checkI2cArgs(ctx: I2cCallContext, length?: number): void {
  const bad = (why: string) => {
    throw new I2cError('I2C_BAD_ARGUMENT', `invalid argument: ${why} (${ctx.op} on bus ${ctx.bus})`, { ...ctx });
  };
  if (!Number.isInteger(ctx.address) || ctx.address < 0 || ctx.address > 0x7f) bad(`address ${ctx.address}`);
  if (ctx.register !== undefined && (!Number.isInteger(ctx.register) || ctx.register < 0 || ctx.register > 0xff)) {
    bad(`register ${ctx.register}`);
  }
  if (length !== undefined && (!Number.isInteger(length) || length < 0 || length > 32)) bad(`length ${length}`);
}

/**
 * Maps a failure to open `/dev/i2c-N` to a {@link HardwareUnavailableError} naming the fix
 * (I2C not enabled, or the user not in the `i2c` group).
 */
export function i2cOpenError(err: unknown, bus: number, user = 'pifleet'): HardwareUnavailableError {
  const errno = errnoName(err);
  const data = { bus, ...(errno === undefined ? {} : { errno }) };
  if (errno === 'EACCES' || errno === 'EPERM') {
    return new HardwareUnavailableError(
      'HW_I2C_PERMISSION',
      `no permission to open /dev/i2c-${bus}`,
      `add the user to the i2c group: sudo usermod -aG i2c ${user} (then log in again or restart the service)`,
      { cause: err, data },
    );
  }
  return new HardwareUnavailableError(
    'HW_I2C_DISABLED',
    `cannot open /dev/i2c-${bus}${errno === undefined ? '' : ` (${errno})`}`,
    bus === 1
      ? 'enable I2C: sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in /boot/firmware/config.txt), then reboot'
      : `enable I2C bus ${bus} with a dtoverlay in /boot/firmware/config.txt and reboot, or set the bus number in the config`,
    { cause: err, data },
  );
}
