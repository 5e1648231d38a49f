import { ShadowError } from '../errors.js';
import type { Clock } from '../ports/clock.js';

/** Races a shadow request against a timeout on the given clock. */
export function withTimeout<T>(clock: Clock, ms: number, operation: string, p: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => {
      reject(
        new ShadowError('SHADOW_TIMEOUT', `shadow ${operation} timed out`, { data: { operation, timeoutMs: ms } }),
      );
    }, ms);
    p.then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err);
      },
    );
  });
}
