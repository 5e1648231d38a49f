import { describe, expect, it } from 'vitest';
import { runPool } from '../../src/core/pool.js';

describe('runPool', () => {
  it('never runs more than the concurrency at once and runs every item', async () => {
    let active = 0;
    let peak = 0;
    const seen: number[] = [];
    await runPool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setImmediate(r));
      seen.push(n);
      active--;
    });
    expect(peak).toBe(3);
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('starts nothing new after abort and reports it', async () => {
    const controller = new AbortController();
    const started: number[] = [];
    const r = await runPool(
      [1, 2, 3, 4, 5, 6],
      2,
      async (n) => {
        started.push(n);
        if (n === 3) controller.abort();
        await new Promise((res) => setImmediate(res));
      },
      controller.signal,
    );
    expect(r.aborted).toBe(true);
    expect(started.length).toBeLessThanOrEqual(4);
    expect(started).toContain(3);
  });
});
