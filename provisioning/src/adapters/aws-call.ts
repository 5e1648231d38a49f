import type { ApiRateLimiter } from '../core/rate-limiter.js';
import { isRetryableAwsError, retry } from '../core/retry.js';
import type { Clock } from '../ports/clock.js';

/**
 * How the AWS SDK adapters send a request: each attempt waits for its operation's token of IoT's
 * API rates (the limiter), and a throttled or 5xx answer is tried again with capped exponential
 * backoff on the injected clock. One definition for the registry and jobs adapters.
 */
export interface AwsCallDeps {
  readonly limiter: ApiRateLimiter;
  readonly clock: Clock;
  /** Attempts per call, including the first (throttling and 5xx are retried with backoff). */
  readonly maxAttempts?: number;
  readonly signal?: AbortSignal;
  readonly random?: () => number;
  readonly onRetry?: (info: { operation: string; attempt: number; delayMs: number; err: unknown }) => void;
}

/**
 * The call function of an adapter: `fn` sent as `operation` under the rate limit and retried
 * while `isRetryable` (default: throttling and 5xx); `requestOptions` carries the abort signal to
 * every SDK `send`.
 */
export function awsCaller(deps: AwsCallDeps) {
  const { limiter, clock, signal } = deps;
  const call = <T>(operation: string, fn: () => Promise<T>, isRetryable = isRetryableAwsError): Promise<T> =>
    retry(
      async () => {
        await limiter.take(operation, signal);
        return fn();
      },
      {
        maxAttempts: deps.maxAttempts ?? 8,
        baseMs: 100,
        capMs: 5_000,
        clock,
        isRetryable,
        ...(deps.random ? { random: deps.random } : {}),
        ...(signal ? { signal } : {}),
        onRetry: (info) => deps.onRetry?.({ operation, ...info }),
      },
    );
  return { call, requestOptions: signal ? { abortSignal: signal } : {} };
}

/** The error's `name` (the SDK's exception name), when it has one. */
export const awsErrorName = (err: unknown) => (err as { name?: unknown } | null)?.name;

/** IoT's "no such resource": the adapters turn it into a value (`undefined`, `false`, `[]`). */
export const isNotFound = (err: unknown) => awsErrorName(err) === 'ResourceNotFoundException';
