/**
 * GPIO port: lines named by their BCM number (the `GPIO17` in pinout diagrams, not the
 * physical pin number and not the kernel's sysfs number; adapters translate).
 *
 * Values are *logical*: with `activeLow` a line reads 1 when the pin is low, and writing 1
 * drives it low. Every failure rejects with a `GpioError` (or `HardwareUnavailableError` when
 * the hardware cannot be opened at all).
 */

export type GpioValue = 0 | 1;

/** Which edges an input reports to watchers. */
export type GpioEdge = 'none' | 'rising' | 'falling' | 'both';

export interface GpioInputOptions {
  /** Edges delivered to {@link GpioLine.watch}; default `both`. */
  readonly edge?: GpioEdge;
  /**
   * Debounce window in ms (default 0: every edge is delivered). With a window, a watcher is
   * called once the line has been quiet for `debounceMs` after its last change, with the
   * value read then, and only if that value matches `edge` (the same rule as onoff).
   * The settled value may equal the one before the bounce; drivers filter that.
   */
  readonly debounceMs?: number;
  readonly activeLow?: boolean;
}

export interface GpioOutputOptions {
  /** Logical value driven from the moment the line is opened (default 0), without a glitch. */
  readonly initial?: GpioValue;
  readonly activeLow?: boolean;
}

export type GpioWatcher = (value: GpioValue) => void;

/** One requested line. */
export interface GpioLine {
  /** BCM line number. */
  readonly line: number;
  readonly direction: 'in' | 'out';
  /** Current logical value (an output reads back what it drives). */
  read(): Promise<GpioValue>;
  /** Drives an output; rejects with `GPIO_NOT_OUTPUT` on an input. */
  write(value: GpioValue): Promise<void>;
  /**
   * Calls `watcher` on (debounced) edges of an input; returns the function that stops it.
   * `onError` receives asynchronous failures of the edge machinery. Throws `GPIO_NOT_INPUT`
   * on an output.
   */
  watch(watcher: GpioWatcher, onError?: (err: Error) => void): () => void;
  /** Stops all watchers and gives the line back. Later calls reject with `GPIO_RELEASED`. Idempotent. */
  release(): Promise<void>;
}

/** A GPIO controller (the Pi's header, or a simulated chip). */
export interface Gpio {
  /** Requests `line` as an input. A line already held through this controller rejects with `GPIO_BUSY`. */
  input(line: number, options?: GpioInputOptions): Promise<GpioLine>;
  /** Requests `line` as an output. */
  output(line: number, options?: GpioOutputOptions): Promise<GpioLine>;
  /** Releases every line still held. */
  close(): Promise<void>;
}
