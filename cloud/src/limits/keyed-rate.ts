import { TokenBucket } from '@pifleet/protocol';

/**
 * One token bucket per key (a connection, a client id, a thing), for "N per second per X" quotas.
 * IoT Core does not document its burst size; a bucket holds one second's worth, so a client may
 * send N at once and then N per second, which is what "N per second" means to a device author.
 *
 * Buckets of keys not seen for `idleMs` are dropped (swept at most once per `idleMs`), so a fleet
 * of short-lived client ids does not grow the map without bound.
 */
export class KeyedRateLimiter {
  readonly #ratePerSecond: number;
  readonly #idleMs: number;
  readonly #buckets = new Map<string, { bucket: TokenBucket; lastMs: number }>();
  #sweptAt = 0;

  constructor(options: { readonly ratePerSecond: number; readonly idleMs?: number }) {
    this.#ratePerSecond = options.ratePerSecond;
    this.#idleMs = options.idleMs ?? 60_000;
  }

  /** Takes `cost` tokens for `key` at `now` if it has them; false = over the quota (nothing taken). */
  tryTake(key: string, now: number, cost = 1): boolean {
    this.#sweep(now);
    let entry = this.#buckets.get(key);
    if (!entry) {
      const burst = Math.max(1, Math.ceil(this.#ratePerSecond));
      entry = { bucket: new TokenBucket({ ratePerSecond: this.#ratePerSecond, burst }), lastMs: now };
      this.#buckets.set(key, entry);
    }
    entry.lastMs = now;
    if (cost === 1) return entry.bucket.tryTake(now);
    // A cost of several tokens (bytes) is taken one reservation at a time: it succeeds only when
    // all of them are free now, and then takes them all.
    return entry.bucket.tryTakeMany(now, cost);
  }

  /** Forgets a key (its connection closed). */
  delete(key: string): void {
    this.#buckets.delete(key);
  }

  get size(): number {
    return this.#buckets.size;
  }

  #sweep(now: number): void {
    if (now - this.#sweptAt < this.#idleMs) return;
    this.#sweptAt = now;
    for (const [key, entry] of this.#buckets) if (now - entry.lastMs >= this.#idleMs) this.#buckets.delete(key);
  }
}
