import { describe, expect, it } from 'vitest';
import { isRetryableAwsError, isThrottling, retry } from '../../src/core/retry.js';
import { instantClock } from '../helpers.js';

const throttle = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });

describe('retry', () => {
  it('retries throttling with growing jittered delays, then succeeds', async () => {
    const clock = instantClock();
    let calls = 0;
    const seen: number[] = [];
    const result = await retry(
      async () => {
        calls++;
        if (calls < 4) throw throttle();
        return 'ok';
      },
      {
        maxAttempts: 5,
        baseMs: 100,
        capMs: 10_000,
        clock,
        random: () => 0.99,
        isRetryable: isRetryableAwsError,
        onRetry: (i) => seen.push(i.attempt),
      },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(4);
    expect(seen).toEqual([1, 2, 3]);
    expect(clock.slept).toEqual([99, 198, 396]);
  });

  it('stops the waits growing at capMs', async () => {
    const clock = instantClock();
    await expect(
      retry(
        async () => {
          throw throttle();
        },
        { maxAttempts: 8, baseMs: 100, capMs: 1000, clock, random: () => 0.5, isRetryable: isRetryableAwsError },
      ),
    ).rejects.toThrow('Rate exceeded');
    expect(clock.slept).toEqual([50, 100, 200, 400, 500, 500, 500]);
  });

  it('gives up after maxAttempts and rethrows the last error', async () => {
    const clock = instantClock();
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw throttle();
        },
        { maxAttempts: 3, baseMs: 10, capMs: 100, clock, isRetryable: isRetryableAwsError },
      ),
    ).rejects.toThrow('Rate exceeded');
    expect(calls).toBe(3);
  });

  it('does not retry what is not retryable', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw Object.assign(new Error('nope'), { name: 'ResourceNotFoundException' });
        },
        { maxAttempts: 5, baseMs: 10, capMs: 100, clock: instantClock(), isRetryable: isRetryableAwsError },
      ),
    ).rejects.toThrow('nope');
    expect(calls).toBe(1);
  });

  it.each([
    [{ name: 'ThrottlingException' }, true],
    [{ name: 'ServiceUnavailableException' }, true],
    [{ name: 'X', $metadata: { httpStatusCode: 503 } }, true],
    [{ name: 'X', $metadata: { httpStatusCode: 429 } }, true],
    [{ code: 'ECONNRESET' }, true],
    [{ code: 'ECONNREFUSED' }, false],
    [{ name: 'InvalidRequestException', $metadata: { httpStatusCode: 400 } }, false],
    [null, false],
  ])('isRetryableAwsError(%j) = %s', (err, expected) => {
    expect(isRetryableAwsError(err)).toBe(expected);
  });

  it('isThrottling', () => {
    expect(isThrottling(throttle())).toBe(true);
    expect(isThrottling(new Error('x'))).toBe(false);
  });
});
