import {
  type Clock,
  type Gpio,
  type GpioEdge,
  GpioError,
  type GpioInputOptions,
  type GpioLine,
  type GpioOutputOptions,
  type GpioValue,
  type GpioWatcher,
  type TimerHandle,
} from '@pifleet/device-agent';

/** One change of a line's physical level, for observing outputs. */
export interface LevelChange {
  readonly ts: number;
  readonly line: number;
  readonly level: GpioValue;
}

interface Claim {
  readonly direction: 'in' | 'out';
  readonly activeLow: boolean;
  readonly edge: GpioEdge;
  readonly debounceMs: number;
  readonly watchers: Set<{ watcher: GpioWatcher }>;
  timer?: TimerHandle;
  lastLevel: GpioValue;
}

/**
 * A simulated GPIO controller implementing the `Gpio` port with the same semantics as the
 * onoff adapter: logical values with active-low, edge selection, onoff-style debounce (one
 * call after `debounceMs` of quiet, with the value then, if it matches the edge), one claim
 * per line. The test side drives inputs ({@link drive}, {@link bounce}), wires outputs to
 * inputs ({@link wire}) and observes outputs ({@link level}, {@link history}).
 */
export class SimGpioChip implements Gpio {
  readonly #clock: Clock;
  readonly #lines: number;
  /** Physical level driven from outside (test or wire) per line; default pull-down (0). */
  readonly #external = new Map<number, GpioValue>();
  /** Physical level an output drives. */
  readonly #driven = new Map<number, GpioValue>();
  readonly #claims = new Map<number, Claim>();
  readonly #wires = new Map<number, Set<number>>();
  readonly #stuck = new Map<number, GpioValue>();
  readonly #history: LevelChange[] = [];

  constructor(options: { clock: Clock; lines?: number }) {
    this.#clock = options.clock;
    this.#lines = options.lines ?? 28;
  }

  // ---- test side -------------------------------------------------------------------------

  /** Physical level of a line now (what a multimeter would show). */
  level(line: number): GpioValue {
    const stuck = this.#stuck.get(line);
    if (stuck !== undefined) return stuck;
    return this.#driven.get(line) ?? this.#external.get(line) ?? 0;
  }

  /** Drives an input's pin to a physical level (a button, a PIR output). */
  drive(line: number, level: GpioValue): void {
    this.#external.set(line, level);
    this.#changed(line);
  }

  /**
   * Drives a sequence of physical levels `intervalMs` apart on the clock (contact bounce),
   * the first immediately. Resolves when the last level is applied.
   */
  bounce(line: number, levels: readonly GpioValue[], intervalMs: number): Promise<void> {
    return new Promise((resolve) => {
      const step = (i: number) => {
        const level = levels[i];
        if (level === undefined) {
          resolve();
          return;
        }
        this.drive(line, level);
        if (i + 1 < levels.length) this.#clock.setTimeout(() => step(i + 1), intervalMs);
        else resolve();
      };
      step(0);
    });
  }

  /** Connects an output pin to an input pin (a jumper wire). */
  wire(fromLine: number, toLine: number): void {
    const set = this.#wires.get(fromLine) ?? new Set<number>();
    set.add(toLine);
    this.#wires.set(fromLine, set);
    this.#propagate(fromLine);
  }

  /** Fault: the pin is stuck at a level (shorted), whatever drives it. `undefined` frees it. */
  stick(line: number, level: GpioValue | undefined): void {
    if (level === undefined) this.#stuck.delete(line);
    else this.#stuck.set(line, level);
    this.#changed(line);
  }

  /** Every physical level change of claimed output lines, oldest first. */
  history(line?: number): readonly LevelChange[] {
    return line === undefined ? [...this.#history] : this.#history.filter((c) => c.line === line);
  }

  /** Lines currently claimed. */
  claimed(): number[] {
    return [...this.#claims.keys()];
  }

  // ---- port side -------------------------------------------------------------------------

  async input(line: number, options: GpioInputOptions = {}): Promise<GpioLine> {
    this.#checkFree(line);
    const claim: Claim = {
      direction: 'in',
      activeLow: options.activeLow ?? false,
      edge: options.edge ?? 'both',
      debounceMs: options.debounceMs ?? 0,
      watchers: new Set(),
      lastLevel: this.level(line),
    };
    this.#claims.set(line, claim);
    return this.#handle(line, claim);
  }

  async output(line: number, options: GpioOutputOptions = {}): Promise<GpioLine> {
    this.#checkFree(line);
    const activeLow = options.activeLow ?? false;
    const claim: Claim = {
      direction: 'out',
      activeLow,
      edge: 'none',
      debounceMs: 0,
      watchers: new Set(),
      lastLevel: 0,
    };
    this.#claims.set(line, claim);
    this.#drive(line, (((options.initial ?? 0) === 1) !== activeLow ? 1 : 0) as GpioValue);
    return this.#handle(line, claim);
  }

  async close(): Promise<void> {
    for (const line of [...this.#claims.keys()]) this.#release(line);
  }

  // ---- internals -------------------------------------------------------------------------

  #checkFree(line: number): void {
    if (!Number.isInteger(line) || line < 0 || line >= this.#lines) {
      throw new GpioError('GPIO_BAD_LINE', `BCM line ${line} does not exist (0–${this.#lines - 1})`, { line });
    }
    if (this.#claims.has(line)) throw new GpioError('GPIO_BUSY', `GPIO BCM ${line} is already in use`, { line });
  }

  #drive(line: number, level: GpioValue): void {
    if (this.#driven.get(line) === level) return;
    this.#driven.set(line, level);
    this.#history.push({ ts: this.#clock.now(), line, level });
    this.#changed(line);
  }

  #propagate(fromLine: number): void {
    for (const to of this.#wires.get(fromLine) ?? []) {
      this.#external.set(to, this.level(fromLine));
      this.#changed(to);
    }
  }

  /** A line's physical level may have changed: wake watchers of an input, feed wires of an output. */
  #changed(line: number): void {
    const claim = this.#claims.get(line);
    const level = this.level(line);
    if (claim?.direction === 'in' && level !== claim.lastLevel) {
      claim.lastLevel = level;
      if (claim.debounceMs > 0) {
        if (claim.timer !== undefined) this.#clock.clearTimeout(claim.timer);
        claim.timer = this.#clock.setTimeout(() => {
          delete claim.timer;
          this.#notify(line, claim);
        }, claim.debounceMs);
      } else {
        this.#notify(line, claim);
      }
    }
    this.#propagate(line);
  }

  #notify(line: number, claim: Claim): void {
    if (this.#claims.get(line) !== claim) return;
    const value = this.#logical(line, claim);
    const wanted =
      claim.edge === 'both' || (claim.edge === 'rising' && value === 1) || (claim.edge === 'falling' && value === 0);
    if (!wanted) return;
    for (const w of [...claim.watchers]) w.watcher(value);
  }

  #logical(line: number, claim: Claim): GpioValue {
    return ((this.level(line) === 1) !== claim.activeLow ? 1 : 0) as GpioValue;
  }

  #release(line: number): void {
    const claim = this.#claims.get(line);
    if (!claim) return;
    if (claim.timer !== undefined) this.#clock.clearTimeout(claim.timer);
    claim.watchers.clear();
    this.#claims.delete(line);
    if (claim.direction === 'out') {
      // Like unexport on a Pi: the pin becomes an input again and floats to its pull (low).
      this.#driven.delete(line);
      this.#history.push({ ts: this.#clock.now(), line, level: this.level(line) });
      this.#changed(line);
    }
  }

  #handle(line: number, claim: Claim): GpioLine {
    let released = false;
    const check = () => {
      if (released) throw new GpioError('GPIO_RELEASED', `GPIO BCM ${line} was released`, { line });
    };
    return {
      line,
      direction: claim.direction,
      read: async () => {
        check();
        return this.#logical(line, claim);
      },
      write: async (value) => {
        check();
        if (claim.direction !== 'out') throw new GpioError('GPIO_NOT_OUTPUT', `GPIO BCM ${line} is an input`, { line });
        this.#drive(line, ((value === 1) !== claim.activeLow ? 1 : 0) as GpioValue);
      },
      watch: (watcher) => {
        check();
        if (claim.direction !== 'in') throw new GpioError('GPIO_NOT_INPUT', `GPIO BCM ${line} is an output`, { line });
        const entry = { watcher };
        claim.watchers.add(entry);
        return () => {
          claim.watchers.delete(entry);
        };
      },
      release: async () => {
        if (released) return;
        released = true;
        this.#release(line);
      },
    };
  }
}
