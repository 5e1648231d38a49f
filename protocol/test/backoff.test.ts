import { describe, expect, it } from 'vitest';
import { type BackoffSchedule, exponentialBackoff } from '../src/backoff.js';

const always = (r: number) => () => r;

describe('exponentialBackoff', () => {
  it.each<[string, number, BackoffSchedule, number | undefined, number]>([
    // No jitter: the ceiling min(cap, base · factorⁿ).
    ['doubles from the base', 0, { baseMs: 100 }, undefined, 100],
    ['doubles from the base', 3, { baseMs: 100 }, undefined, 800],
    ['has no cap unless given one', 20, { baseMs: 100 }, undefined, 104_857_600],
    ['stops at the cap', 6, { baseMs: 1000, capMs: 60_000 }, undefined, 60_000],
    ['stays at the cap when factorⁿ overflows', 5000, { baseMs: 1000, capMs: 60_000 }, undefined, 60_000],
    ['grows by the factor', 2, { baseMs: 500, factor: 3 }, undefined, 4500],
    ['treats a negative retry as the first', -1, { baseMs: 1000, capMs: 60_000 }, undefined, 1000],
    ['keeps a zero base at zero', 5000, { baseMs: 0, capMs: 100 }, undefined, 0],
    // Full jitter: a whole number of ms in [0, ceiling).
    ['draws below the ceiling', 3, { baseMs: 100, capMs: 5000 }, 0.5, 400],
    ['never reaches the ceiling', 1, { baseMs: 1000, capMs: 30_000 }, 0.999, 1998],
    ['draws below the cap', 10, { baseMs: 1000, capMs: 30_000 }, 0.999, 29_970],
    ['can draw zero', 3, { baseMs: 100, capMs: 5000 }, 0, 0],
    // The floor holds with or without jitter.
    ['raises a low draw to the floor', 5, { baseMs: 1000, capMs: 30_000, floorMs: 1000 }, 0, 1000],
    ['draws below the cap above the floor', 50, { baseMs: 1000, capMs: 30_000, floorMs: 1000 }, 0.999, 29_970],
    ['leaves a draw above the floor', 3, { baseMs: 1000, capMs: 30_000, floorMs: 1000 }, 0.5, 4000],
    ['raises a low ceiling to the floor', 0, { baseMs: 10, floorMs: 50 }, undefined, 50],
  ])('%s: retry %i of %j with random %s → %i ms', (_what, retry, schedule, r, expected) => {
    expect(exponentialBackoff(retry, schedule, r === undefined ? undefined : always(r))).toBe(expected);
  });

  it('draws once per call, and only with jitter', () => {
    let draws = 0;
    const random = () => {
      draws++;
      return 0.25;
    };
    expect(exponentialBackoff(2, { baseMs: 100 }, random)).toBe(100);
    expect(draws).toBe(1);
    exponentialBackoff(2, { baseMs: 100 });
    expect(draws).toBe(1);
  });

  it('spreads a fleet: 1000 clients at retry 5 do not pick the same wait', () => {
    const waits = new Set(
      Array.from({ length: 1000 }, () => exponentialBackoff(5, { baseMs: 1000, capMs: 60_000 }, Math.random)),
    );
    expect(waits.size).toBeGreaterThan(500);
  });
});
