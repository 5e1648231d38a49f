import { describe, expect, it } from 'vitest';
import { AWS_CONTROL_PLANE_RATES, RateLimiter, scaleRates, TokenBucket } from '../../src/core/rate-limiter.js';
import { manualClock } from '../helpers.js';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces calls at the rate', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, clock });
    const waits = Array.from({ length: 6 }, () => bucket.reserve());
    expect(waits).toEqual([0, 0, 0, 100, 200, 300]);
  });

  it('refills with time and never stores more than the burst', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 2, burst: 2, clock });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 500]);
    clock.advance(10_000);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 500]);
  });

  it('keeps the long-run rate for concurrent takers', async () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 5, burst: 1, clock });
    let done = 0;
    const all = Array.from({ length: 10 }, () => bucket.take().then(() => done++));
    await Promise.resolve();
    expect(done).toBe(1);
    for (let t = 0; t < 9; t++) {
      clock.advance(200);
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(done).toBe(10);
    expect(clock.slept).toEqual([200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new TokenBucket({ ratePerSecond: 0, clock: manualClock() })).toThrow(RangeError);
  });
});

describe('RateLimiter', () => {
  it('limits each operation on its own and leaves unlisted ones alone', async () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ rates: { CreateKeysAndCertificate: 1 }, clock });
    await limiter.take('CreateKeysAndCertificate');
    await limiter.take('CreateThing');
    await limiter.take('CreateThing');
    const second = limiter.take('CreateKeysAndCertificate');
    expect(clock.slept).toEqual([1000]);
    clock.advance(1000);
    await second;
  });

  it('AWS defaults stay under the published per-account quotas and scale', () => {
    expect(AWS_CONTROL_PLANE_RATES.CreateKeysAndCertificate).toBeLessThan(10);
    expect(AWS_CONTROL_PLANE_RATES.AttachPolicy).toBeLessThan(15);
    expect(scaleRates({ a: 10 }, 0.5)).toEqual({ a: 5 });
  });
});
