/**
 * A token bucket: `ratePerSecond` operations per second on average, bursts of up to `burst`; it
 * starts full. Time is the caller's (ms, passed in), so it is pure and runs on any clock.
 *
 * Kept in its "virtual scheduling" form (GCRA): instead of a token count it holds the time at
 * which the bucket would be full again. A token is free while that time is at most `burst − 1`
 * intervals ahead of now, and taking one moves it an interval later, so a caller can reserve a
 * token that is not free yet (concurrent callers get theirs in order and never exceed the rate
 * together) as well as only try to take one.
 */
export class TokenBucket {
  readonly #intervalMs: number;
  /** How far ahead of now the full-again time may be while a token is free: (burst − 1) intervals. */
  readonly #aheadMs: number;
  #fullAt = Number.NEGATIVE_INFINITY;

  constructor(options: { readonly ratePerSecond: number; readonly burst?: number }) {
    if (!(options.ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
    this.#intervalMs = 1000 / options.ratePerSecond;
    this.#aheadMs = (Math.max(1, options.burst ?? 1) - 1) * this.#intervalMs;
  }

  /** Milliseconds from `now` until a token is free (0 if one is); takes nothing. */
  waitMs(now: number): number {
    return Math.max(0, this.#fullAt - this.#aheadMs - now);
  }

  /** Takes a token if one is free at `now`. */
  tryTake(now: number): boolean {
    if (this.waitMs(now) > 0) return false;
    this.#take(now);
    return true;
  }

  /**
   * Takes `count` tokens if all of them are free at `now` (for quotas counted in bytes); takes
   * nothing otherwise. More than the burst is never free.
   */
  tryTakeMany(now: number, count: number): boolean {
    if (count <= 1) return this.tryTake(now);
    // The microsecond of slack absorbs floating-point error when count is the whole burst.
    if (Math.max(this.#fullAt, now) + (count - 1) * this.#intervalMs - this.#aheadMs > now + 1e-3) return false;
    this.#fullAt = Math.max(this.#fullAt, now) + count * this.#intervalMs;
    return true;
  }

  /** Takes the next token, free or not, and returns how long from `now` until it is (0 when free). */
  reserve(now: number): number {
    const wait = this.waitMs(now);
    this.#take(now);
    return wait;
  }

  #take(now: number): void {
    this.#fullAt = Math.max(this.#fullAt, now) + this.#intervalMs;
  }
}
