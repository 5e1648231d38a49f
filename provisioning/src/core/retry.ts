import { exponentialBackoff } from '@pifleet/protocol';
import type { Clock } from '../ports/clock.js';

/**
 * Retries with capped exponential backoff and full jitter ({@link exponentialBackoff}): the wait
 * before retry n (0-based) is a uniformly random time in [0, min(capMs, baseMs·2ⁿ)).
 */
export interface RetryOptions {
  /** Total attempts including the first. */
  readonly maxAttempts: number;
  readonly baseMs: number;
  readonly capMs: number;
  readonly clock: Clock;
  /** A number in [0, 1); injected for tests. */
  readonly random?: () => number;
  readonly isRetryable: (err: unknown) => boolean;
  readonly signal?: AbortSignal;
  readonly onRetry?: (info: { attempt: number; delayMs: number; err: unknown }) => void;
}

export async function retry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const random = options.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt + 1 >= options.maxAttempts || !options.isRetryable(err) || options.signal?.aborted) throw err;
      const delayMs = exponentialBackoff(attempt, { baseMs: options.baseMs, capMs: options.capMs }, random);
      options.onRetry?.({ attempt: attempt + 1, delayMs, err });
      await options.clock.sleep(delayMs, options.signal);
    }
  }
}

const RETRYABLE_NAMES = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'ServiceUnavailableException',
  'InternalFailureException',
  'InternalException',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** Whether an AWS SDK error is worth retrying: throttling, a 5xx, or a dropped connection (never ECONNREFUSED). */
export function isRetryableAwsError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  if (typeof e.name === 'string' && RETRYABLE_NAMES.has(e.name)) return true;
  if (typeof e.code === 'string' && RETRYABLE_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  return status === 429 || (status !== undefined && status >= 500 && status !== 501);
}

export function isThrottling(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'ThrottlingException' || name === 'TooManyRequestsException';
}
