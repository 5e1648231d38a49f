import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from '../../src/core/backoff.js';
import { RateLimiter } from '../../src/core/rate-limiter.js';

describe('backoffDelay', () => {
  it.each([
    [0, 0.999, 1000],
    [1, 0.999, 1998],
    [3, 0.5, 4000],
    [10, 0.999, 29_970],
    [50, 0.999, 29_970],
    [5, 0, 1000],
  ])('attempt %i with random %f → %i ms', (attempt, r, expected) => {
    expect(backoffDelay(attempt, { minMs: 1000, maxMs: 30_000, random: () => r })).toBe(expected);
  });

  it('spreads a fleet: 1000 agents at attempt 5 do not pick the same delay', () => {
    const delays = new Set(Array.from({ length: 1000 }, () => backoffDelay(5, { minMs: 1000, maxMs: 60_000 })));
    expect(delays.size).toBeGreaterThan(500);
  });

  it('Backoff grows and resets', () => {
    const b = new Backoff({ minMs: 100, maxMs: 10_000, random: () => 0.999 });
    expect([b.next(), b.next(), b.next()]).toEqual([100, 199, 399]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});

describe('RateLimiter', () => {
  it('allows a burst then one per interval', () => {
    const r = new RateLimiter(10, 2, 0);
    expect(r.tryTake(0)).toBe(true);
    expect(r.tryTake(0)).toBe(true);
    expect(r.tryTake(0)).toBe(false);
    expect(r.waitMs(0)).toBe(100);
    expect(r.tryTake(99)).toBe(false);
    expect(r.tryTake(100)).toBe(true);
  });
});
