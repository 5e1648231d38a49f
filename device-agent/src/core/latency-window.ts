/** The latest latency and its median and 99th percentile over the window, in ms. */
export interface LatencySummary {
  readonly last: number;
  readonly p50: number;
  readonly p99: number;
  /** Latencies the percentiles are taken over (at most the window's capacity). */
  readonly samples: number;
}

/**
 * The last `capacity` latencies in a ring: memory stays bounded however long the agent runs, and
 * the percentiles describe the recent link rather than its whole history (at the default batch
 * age of 10 s, 256 acknowledgements are the last ~43 minutes; at 10 publishes a second, ~26 s).
 * Percentiles by nearest rank over a sorted copy, taken only when the health sampler asks (once a
 * minute by default), so adding a latency costs one store.
 */
export class LatencyWindow {
  readonly #values: Float64Array;
  #next = 0;
  #size = 0;
  #last: number | undefined;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    this.#values = new Float64Array(capacity);
  }

  /** Records one latency; a negative one (a clock stepped back) counts as 0. */
  add(ms: number): void {
    if (!Number.isFinite(ms)) return;
    const v = Math.max(0, ms);
    this.#values[this.#next] = v;
    this.#next = (this.#next + 1) % this.capacity;
    this.#size = Math.min(this.#size + 1, this.capacity);
    this.#last = v;
  }

  get size(): number {
    return this.#size;
  }

  /** Undefined until a latency was added. */
  summary(): LatencySummary | undefined {
    if (this.#last === undefined) return undefined;
    const sorted = this.#values.slice(0, this.#size).sort();
    return {
      last: this.#last,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      samples: this.#size,
    };
  }
}

/** Nearest rank: the smallest value with at least `q` of the values at or below it. */
function percentile(sorted: Float64Array, q: number): number {
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] as number;
}
