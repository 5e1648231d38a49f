import { GpioError } from '../hardware/errors.js';
import type { Clock } from '../ports/clock.js';
import type { Gpio, GpioLine } from '../ports/gpio.js';
import type { DigitalInput, InputEvent, Metrics, Output } from './types.js';

export interface DigitalInputOptions {
  readonly id: string;
  readonly gpio: Gpio;
  readonly clock: Clock;
  /** BCM line number. */
  readonly line: number;
  /** Debounce window in ms; default 20 (enough for most buttons and reed switches). */
  readonly debounceMs?: number;
  /** True when the input is active at a low level (button to GND with a pull-up). */
  readonly activeLow?: boolean;
}

/**
 * A debounced digital input. Edges come from the port's watcher (debounced there); a settled
 * value equal to the current state (a bounce that returned to where it started) is ignored.
 * `count` counts activations (inactive → active). `read()` → `{ state, count }`.
 */
export function createDigitalInput(options: DigitalInputOptions): DigitalInput {
  const { id, gpio, clock } = options;
  const listeners = new Set<(e: InputEvent) => void>();
  let line: GpioLine | undefined;
  let stopWatch: (() => void) | undefined;
  let state = false;
  let count = 0;

  const onValue = (value: 0 | 1) => {
    const next = value === 1;
    if (next === state) return;
    state = next;
    if (next) count += 1;
    const event: InputEvent = { sensor: id, state, count, ts: clock.now() };
    for (const l of [...listeners]) l(event);
  };

  const release = async () => {
    stopWatch?.();
    stopWatch = undefined;
    const l = line;
    line = undefined;
    await l?.release();
  };

  return {
    id,
    driver: 'digital-input',
    async init() {
      await release();
      const l = await gpio.input(options.line, {
        edge: 'both',
        debounceMs: options.debounceMs ?? 20,
        activeLow: options.activeLow ?? false,
      });
      line = l;
      state = (await l.read()) === 1;
      stopWatch = l.watch(onValue);
    },
    async read(): Promise<Metrics> {
      if (!line) {
        throw new GpioError('GPIO_RELEASED', `digital input ${id} (BCM ${options.line}) is not open`, {
          line: options.line,
        });
      }
      return { state, count };
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    state: () => state,
    count: () => count,
    close: release,
  };
}

export interface DigitalOutputOptions {
  readonly id: string;
  readonly gpio: Gpio;
  /** BCM line number. */
  readonly line: number;
  /** True for relay boards that switch on at a low level. */
  readonly activeLow?: boolean;
  /** State driven when the line is claimed (default off). */
  readonly initial?: boolean;
}

/** A relay or LED: logical on/off, the configured initial state driven from the moment it is claimed. */
export function createDigitalOutput(options: DigitalOutputOptions): Output {
  const { id, gpio } = options;
  let line: GpioLine | undefined;
  let state = options.initial ?? false;

  return {
    id,
    driver: 'digital-output',
    async init() {
      const old = line;
      line = undefined;
      await old?.release();
      state = options.initial ?? false;
      line = await gpio.output(options.line, { initial: state ? 1 : 0, activeLow: options.activeLow ?? false });
    },
    async set(on) {
      if (!line) {
        throw new GpioError('GPIO_RELEASED', `output ${id} (BCM ${options.line}) is not open`, { line: options.line });
      }
      await line.write(on ? 1 : 0);
      state = on;
    },
    get: () => state,
    async close() {
      const l = line;
      line = undefined;
      await l?.release();
    },
  };
}
