/**
 * The interface between the hardware layer and the agent runtime (sampler, reconciler).
 *
 * The runtime never talks to ports or chips directly: it gets {@link Sensor}s and
 * {@link Output}s from `openHardware(spec)` (see `hardware/open.ts`) and only calls these
 * methods. Sensors returned by `openHardware` are already wrapped by the health supervisor
 * (`drivers/supervisor.ts`), so a failing sensor is reported unhealthy and retried with
 * backoff while the others keep working.
 *
 * Errors: every rejection is a `HardwareError` subclass with a stable `code`:
 * `I2cError` (bus, address, register), `GpioError` (line), `SensorError` (sensor, driver,
 * address, register), `HardwareUnavailableError` (fix).
 */

/** One metric value, as the telemetry batch carries it (`@pifleet/protocol` metricValueSchema). */
export type MetricValue = number | boolean;

/**
 * Metric name → value for one reading. Names match protocol's METRIC_NAME_PATTERN.
 *
 * - bme280: `temperature` (°C), `humidity` (%RH), `pressure` (hPa)
 * - bh1750: `illuminance` (lux)
 * - ads1115: one metric per configured channel, named by the config (volts)
 * - digital-input: `state` (boolean, logical: true = active), `count` (activations since open)
 */
export type Metrics = Record<string, MetricValue>;

/** Something the sampler reads periodically. */
export interface Sensor {
  /** Sensor id from the device config (`reading.sensor` in telemetry). */
  readonly id: string;
  /** Driver name: `bme280`, `ads1115`, `bh1750`, `digital-input`. */
  readonly driver: string;
  /**
   * Probes and configures the device (chip id, reset, calibration, modes). Must be called
   * before `read`; may be called again to recover after a failure (the supervisor does).
   */
  init(): Promise<void>;
  /** Takes one reading. Rejects with a typed error; never returns partial metrics. */
  read(): Promise<Metrics>;
  /** Releases the device (lines, listeners). Idempotent. */
  close(): Promise<void>;
}

/** An edge of a digital input after debouncing. */
export interface InputEvent {
  readonly sensor: string;
  /** Logical state after the edge (true = active, i.e. pressed / motion / closed). */
  readonly state: boolean;
  /** Activations (transitions to active) since the input was opened, including this one. */
  readonly count: number;
  /** Clock time of the edge, ms since the epoch. */
  readonly ts: number;
}

/** A debounced digital input (button, PIR, reed switch). `read()` returns `{ state, count }`. */
export interface DigitalInput extends Sensor {
  readonly driver: 'digital-input';
  /** Subscribes to debounced edges; returns the unsubscribe function. */
  onEvent(listener: (event: InputEvent) => void): () => void;
  /** Last known logical state (false before `init`). */
  state(): boolean;
  /** Activations since `init`. */
  count(): number;
}

/** Something the reconciler switches (relay, LED). */
export interface Output {
  /** Output id from the device config (`desired.outputs.{id}` in the shadow). */
  readonly id: string;
  readonly driver: string;
  /** Claims the line and drives the configured initial state. */
  init(): Promise<void>;
  /** Switches the output on or off (logical; active-low is handled below). Resolves once driven. */
  set(on: boolean): Promise<void>;
  /** The state last driven (the state to report). */
  get(): boolean;
  /** Releases the line. Idempotent. */
  close(): Promise<void>;
}

/** Health of one supervised sensor, for logs, metrics and the reported state. */
export interface SensorHealth {
  readonly sensor: string;
  /** `init`: not yet initialised; `ok`: last read succeeded; `unhealthy`: failing, retried with backoff. */
  readonly status: 'init' | 'ok' | 'unhealthy';
  /** Consecutive failures (0 when ok). */
  readonly failures: number;
  /** Last failure, if any: its stable code and one-line message. */
  readonly lastError?: { readonly code: string; readonly message: string };
  /** Clock time (ms) before which reads are skipped with SENSOR_BACKOFF. */
  readonly retryAt?: number;
}
