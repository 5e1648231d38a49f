/**
 * How long a retry loop waits: capped exponential backoff, the one schedule every retry in pifleet
 * uses (agent reconnects, sensor re-initialisation, control-plane calls, store writes).
 *
 * Retry `n` (0 for the wait after the first failure) may wait up to
 * `ceiling(n) = min(capMs, baseMs · factorⁿ)`.
 */
export interface BackoffSchedule {
  /** The ceiling of retry 0, ms. */
  readonly baseMs: number;
  /** Upper bound of every ceiling, ms (default: none). */
  readonly capMs?: number;
  /** Growth per retry (default 2). */
  readonly factor?: number;
  /** No wait is shorter than this, ms (default 0), jitter or not. */
  readonly floorMs?: number;
}

/**
 * The wait before retry `n` of `schedule`, in ms. With `random` (a number in [0, 1)) the wait has
 * "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): a whole number of ms
 * drawn uniformly from [0, ceiling), so clients that failed together (a fleet that lost its broker)
 * do not retry in lock step. Without `random` there is no jitter: the wait is the ceiling itself,
 * for a schedule that is followed exactly or reported (the device SDK's own reconnect bound).
 * Pure: the randomness is the caller's.
 */
export function exponentialBackoff(retry: number, schedule: BackoffSchedule, random?: () => number): number {
  const { baseMs, capMs = Number.POSITIVE_INFINITY, factor = 2, floorMs = 0 } = schedule;
  // factor ** n overflows to Infinity after enough retries: the cap brings it back, and a zero base
  // stays zero (0 · Infinity would be NaN).
  const ceiling = baseMs === 0 ? 0 : Math.min(capMs, baseMs * factor ** Math.max(0, retry));
  const wait = random ? Math.floor(random() * ceiling) : ceiling;
  return Math.max(floorMs, wait);
}
