import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../src/token-bucket.js';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces reservations at the rate', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3 });
    expect(Array.from({ length: 6 }, () => bucket.reserve(0))).toEqual([0, 0, 0, 100, 200, 300]);
  });

  it('refills with time and never stores more than the burst', () => {
    const bucket = new TokenBucket({ ratePerSecond: 2, burst: 2 });
    expect([bucket.reserve(0), bucket.reserve(0), bucket.reserve(0)]).toEqual([0, 0, 500]);
    expect([bucket.reserve(10_000), bucket.reserve(10_000), bucket.reserve(10_000)]).toEqual([0, 0, 500]);
  });

  it('tryTake allows a burst then one per interval, and waitMs says when', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 2 });
    expect(bucket.tryTake(0)).toBe(true);
    expect(bucket.tryTake(0)).toBe(true);
    expect(bucket.tryTake(0)).toBe(false);
    expect(bucket.waitMs(0)).toBe(100);
    expect(bucket.tryTake(99)).toBe(false);
    expect(bucket.waitMs(99)).toBe(1);
    expect(bucket.tryTake(100)).toBe(true);
    expect(bucket.waitMs(100)).toBe(100);
  });

  it('a refused tryTake and waitMs take nothing', () => {
    const bucket = new TokenBucket({ ratePerSecond: 1 });
    expect(bucket.tryTake(0)).toBe(true);
    for (let i = 0; i < 5; i++) {
      expect(bucket.tryTake(500)).toBe(false);
      expect(bucket.waitMs(500)).toBe(500);
    }
    expect(bucket.tryTake(1000)).toBe(true);
  });

  it('holds a fractional burst: 2.5 tokens give two at once, the third half an interval later', () => {
    const bucket = new TokenBucket({ ratePerSecond: 2.5, burst: 2.5 });
    expect([bucket.tryTake(0), bucket.tryTake(0), bucket.tryTake(0)]).toEqual([true, true, false]);
    expect(bucket.waitMs(0)).toBeCloseTo(200, 9);
  });

  it('keeps the long-run rate: a try every 10 ms from 0 to 10 000 ms at 5/s takes the burst of 5 + 50', () => {
    const bucket = new TokenBucket({ ratePerSecond: 5, burst: 5 });
    let taken = 0;
    for (let t = 0; t <= 10_000; t += 10) if (bucket.tryTake(t)) taken++;
    expect(taken).toBe(5 + 50);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new TokenBucket({ ratePerSecond: 0 })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: Number.NaN })).toThrow(RangeError);
  });
});

describe('TokenBucket.tryTakeMany', () => {
  it('takes a whole burst at once, then only what has refilled', () => {
    const bucket = new TokenBucket({ ratePerSecond: 1000, burst: 1000 });
    expect(bucket.tryTakeMany(0, 1000)).toBe(true);
    expect(bucket.tryTakeMany(0, 1)).toBe(false);
    // 100 ms refill 100 tokens: 100 are free, 101 are not (and the refused call takes nothing).
    expect(bucket.tryTakeMany(100, 101)).toBe(false);
    expect(bucket.tryTakeMany(100, 100)).toBe(true);
    expect(bucket.tryTake(100)).toBe(false);
  });

  it('never grants more than the burst', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 10 });
    expect(bucket.tryTakeMany(0, 11)).toBe(false);
    expect(bucket.tryTakeMany(10_000, 11)).toBe(false);
    expect(bucket.tryTakeMany(10_000, 10)).toBe(true);
  });
});
