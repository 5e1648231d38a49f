import { EXIT, type ExitCode } from '@pifleet/protocol';
import { AgentError } from '../errors.js';

/**
 * Errors of the hardware layer. Every one has a stable `code`, a one-line `message` that a
 * CLI can print as is (no stack trace needed), and the address/register/line it concerns in
 * `data`. Messages of {@link HardwareUnavailableError} end with the fix.
 */
export class HardwareError extends AgentError {
  override name = 'HardwareError';
}

export type HardwareUnavailableCode =
  | 'HW_NOT_A_PI'
  | 'HW_NO_GPIO_CHIP'
  | 'HW_GPIO_PERMISSION'
  | 'HW_I2C_DISABLED'
  | 'HW_I2C_PERMISSION'
  | 'HW_MODULE_MISSING';

/**
 * Real hardware cannot be opened: not a Raspberry Pi, a missing kernel interface, a missing
 * native module, or a permission problem. `fix` says what to do; `exitCode` is what `main`
 * should exit with (77 permission, 69 unavailable).
 */
export class HardwareUnavailableError extends HardwareError {
  override name = 'HardwareUnavailableError';
  declare readonly code: HardwareUnavailableCode;
  readonly fix: string;
  readonly exitCode: ExitCode;

  constructor(
    code: HardwareUnavailableCode,
    problem: string,
    fix: string,
    options: { cause?: unknown; data?: Record<string, unknown> } = {},
  ) {
    super(code, `${problem}; fix: ${fix}`, { ...options, data: { ...(options.data ?? {}), fix } });
    this.fix = fix;
    this.exitCode =
      code === 'HW_GPIO_PERMISSION' || code === 'HW_I2C_PERMISSION' ? EXIT.noPermission : EXIT.unavailable;
  }
}

export type GpioErrorCode =
  | 'GPIO_BAD_LINE'
  | 'GPIO_BUSY'
  | 'GPIO_NOT_OUTPUT'
  | 'GPIO_NOT_INPUT'
  | 'GPIO_RELEASED'
  | 'GPIO_IO';

/** A GPIO operation failed. `data.line` is the BCM line, `data.sysfsLine` the kernel number when known. */
export class GpioError extends HardwareError {
  override name = 'GpioError';
  declare readonly code: GpioErrorCode;
  declare readonly data: Readonly<GpioErrorData>;

  constructor(code: GpioErrorCode, message: string, data: GpioErrorData, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, data: { ...data } });
  }
}

/** What a GPIO error concerns. */
export interface GpioErrorData {
  /** BCM line number. */
  readonly line: number;
  /** Kernel sysfs number, when resolved. */
  readonly sysfsLine?: number;
  readonly errno?: string;
}

export type I2cErrorCode = 'I2C_NACK' | 'I2C_BUS_ERROR' | 'I2C_TIMEOUT' | 'I2C_CLOSED' | 'I2C_BAD_ARGUMENT';

/** Where an I2C failure happened. `register` is absent for plain i2cRead/i2cWrite. */
export interface I2cErrorData {
  readonly bus: number;
  readonly address: number;
  readonly register?: number;
  readonly op: string;
  /** The kernel errno name when the failure came from the OS (EREMOTEIO, ENXIO, EIO, ...). */
  readonly errno?: string;
}

/** An I2C transfer failed. `data` carries the bus, address and register (see {@link I2cErrorData}). */
export class I2cError extends HardwareError {
  override name = 'I2cError';
  declare readonly code: I2cErrorCode;
  declare readonly data: Readonly<I2cErrorData>;

  constructor(code: I2cErrorCode, message: string, data: I2cErrorData, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, data: { ...data } });
  }
}

export type SensorErrorCode =
  | 'SENSOR_WRONG_CHIP'
  | 'SENSOR_NOT_READY'
  | 'SENSOR_TIMEOUT'
  | 'SENSOR_OUT_OF_RANGE'
  | 'SENSOR_STUCK'
  | 'SENSOR_SKIPPED'
  | 'SENSOR_BACKOFF'
  | 'SENSOR_CLOSED';

/** What a sensor error concerns. */
export interface SensorErrorData {
  readonly sensor: string;
  readonly driver: string;
  readonly address?: number;
  readonly register?: number;
  readonly bus?: number;
  readonly line?: number;
  readonly [key: string]: unknown;
}

/** A sensor answered, but not as its datasheet says it should (wrong id, out of range, stuck, timeout). */
export class SensorError extends HardwareError {
  override name = 'SensorError';
  declare readonly code: SensorErrorCode;
  declare readonly data: Readonly<SensorErrorData>;

  constructor(code: SensorErrorCode, message: string, data: SensorErrorData, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, data: { ...data } });
  }
}

/** `0x76` style hex for messages. */
export function hex(n: number, width = 2): string {
  return `0x${n.toString(16).padStart(width, '0').toUpperCase()}`;
}
