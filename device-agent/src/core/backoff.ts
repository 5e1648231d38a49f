/**
 * Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * the n-th retry waits a uniformly random time in [0, min(max, base·2ⁿ)], floored at `minMs` so a
 * fleet that loses its broker at once does not reconnect in lock step.
 */
export interface BackoffOptions {
  readonly minMs: number;
  readonly maxMs: number;
  /** A number in [0, 1); injected for tests. */
  readonly random?: () => number;
}

export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(opts.maxMs, opts.minMs * 2 ** Math.min(attempt, 30));
  return Math.max(opts.minMs, Math.floor(random() * ceiling));
}

/** Stateful helper: `next()` gives the next delay, `reset()` after a success. */
export class Backoff {
  #attempt = 0;
  readonly #opts: BackoffOptions;

  constructor(opts: BackoffOptions) {
    this.#opts = opts;
  }

  next(): number {
    const d = backoffDelay(this.#attempt, this.#opts);
    this.#attempt += 1;
    return d;
  }

  get attempts(): number {
    return this.#attempt;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
