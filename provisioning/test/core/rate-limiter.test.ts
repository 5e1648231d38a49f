import { describe, expect, it } from 'vitest';
import { ApiRateLimiter, AWS_CONTROL_PLANE_RATES, scaleRates } from '../../src/core/rate-limiter.js';
import { manualClock } from '../helpers.js';

describe('ApiRateLimiter', () => {
  it('limits each operation on its own and leaves unlisted ones alone', async () => {
    const clock = manualClock();
    const limiter = new ApiRateLimiter({ rates: { CreateKeysAndCertificate: 1 }, clock });
    await limiter.take('CreateKeysAndCertificate');
    await limiter.take('CreateThing');
    await limiter.take('CreateThing');
    const second = limiter.take('CreateKeysAndCertificate');
    expect(clock.slept).toEqual([1000]);
    clock.advance(1000);
    await second;
  });

  it('serves concurrent takers in order at the long-run rate, after a burst of one second', async () => {
    const clock = manualClock();
    const limiter = new ApiRateLimiter({ rates: { DescribeThing: 5 }, clock });
    let done = 0;
    const all = Array.from({ length: 10 }, () => limiter.take('DescribeThing').then(() => done++));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(5);
    for (let t = 0; t < 5; t++) {
      clock.advance(200);
      await new Promise((r) => setImmediate(r));
      expect(done).toBe(6 + t);
    }
    await Promise.all(all);
    expect(clock.slept).toEqual([200, 400, 600, 800, 1000]);
  });

  it('limits unlisted operations at defaultRate when one is given', async () => {
    const clock = manualClock();
    const limiter = new ApiRateLimiter({ rates: {}, defaultRate: 1, clock });
    await limiter.take('CreateThing');
    const second = limiter.take('CreateThing');
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
