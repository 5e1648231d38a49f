import { describe, expect, it } from 'vitest';
import { LatencyWindow } from '../../src/core/latency-window.js';

describe('LatencyWindow', () => {
  it('has no summary before the first latency', () => {
    expect(new LatencyWindow(8).summary()).toBeUndefined();
  });

  it('gives the last, the median and the 99th percentile by nearest rank', () => {
    const w = new LatencyWindow(256);
    // 1..100 ms in a shuffled order: the median is 50 and p99 is 99 whatever the order.
    const values = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const v of values) w.add(v);
    expect(w.summary()).toEqual({ last: values.at(-1), p50: 50, p99: 99, samples: 100 });
  });

  it('p99 over a window with one slow publish in a hundred shows it; the median does not', () => {
    const w = new LatencyWindow(100);
    for (let i = 0; i < 98; i++) w.add(40);
    w.add(2_500);
    w.add(41);
    // The slow one ranks 100th of 100: p99 (rank 99) is the largest of the rest.
    expect(w.summary()).toMatchObject({ last: 41, p50: 40, p99: 41 });
    w.add(2_600);
    // Two slow ones in the window now (the first 40 dropped out): p99 reaches one.
    expect(w.summary()).toMatchObject({ last: 2_600, p50: 40, p99: 2_500, samples: 100 });
  });

  it('forgets the oldest beyond its capacity', () => {
    const w = new LatencyWindow(4);
    for (const v of [1_000, 1_000, 1_000, 1_000, 10, 20, 30, 40]) w.add(v);
    expect(w.summary()).toEqual({ last: 40, p50: 20, p99: 40, samples: 4 });
    expect(w.size).toBe(4);
  });

  it('takes a negative latency (the clock stepped back) as 0 and ignores a non-number', () => {
    const w = new LatencyWindow(4);
    w.add(-30);
    w.add(Number.NaN);
    expect(w.summary()).toEqual({ last: 0, p50: 0, p99: 0, samples: 1 });
  });

  it.each([0, -1, 1.5])('refuses a capacity of %d', (capacity) => {
    expect(() => new LatencyWindow(capacity)).toThrow(RangeError);
  });
});
