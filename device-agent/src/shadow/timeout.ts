import { ShadowTimeoutError } from '../errors.js';
import { type Clock, withTimeout } from '../ports/clock.js';

/** Races a shadow request against its timeout on the given clock; rejects with a `ShadowTimeoutError`. */
export function shadowRequestTimeout<T>(clock: Clock, ms: number, operation: string, p: Promise<T>): Promise<T> {
  return withTimeout(clock, ms, p, () => new ShadowTimeoutError(operation, ms));
}
