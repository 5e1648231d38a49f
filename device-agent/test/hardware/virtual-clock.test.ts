import { describe, expect, it } from 'vitest';
import { sleep } from '../../src/ports/clock.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';

describe('virtual clock', () => {
  it('fires timers in due order at their own time, including timers they schedule', async () => {
    const clock = createVirtualClock({ start: 1000 });
    const log: Array<[string, number]> = [];
    clock.setTimeout(() => log.push(['b', clock.now()]), 20);
    clock.setTimeout(() => {
      log.push(['a', clock.now()]);
      clock.setTimeout(() => log.push(['c', clock.now()]), 15);
    }, 10);
    const cancelled = clock.setTimeout(() => log.push(['x', clock.now()]), 5);
    clock.clearTimeout(cancelled);
    await clock.advance(30);
    expect(log).toEqual([
      ['a', 1010],
      ['b', 1020],
      ['c', 1025],
    ]);
    expect(clock.now()).toBe(1030);
    expect(clock.pending()).toBe(0);
  });

  it('lets awaited sleeps chain within one advance', async () => {
    const clock = createVirtualClock({ start: 0 });
    let done = -1;
    void (async () => {
      await sleep(clock, 5);
      await sleep(clock, 5);
      done = clock.now();
    })();
    await clock.advance(10);
    expect(done).toBe(10);
  });

  it('in auto mode runs sleeping code to completion without being driven', async () => {
    const clock = createVirtualClock({ start: 0, auto: true });
    await sleep(clock, 60_000);
    await sleep(clock, 1);
    expect(clock.now()).toBe(60_001);
  });

  it('next() jumps to the next timer', async () => {
    const clock = createVirtualClock({ start: 0 });
    expect(await clock.next()).toBe(false);
    clock.setTimeout(() => undefined, 500);
    expect(await clock.next()).toBe(true);
    expect(clock.now()).toBe(500);
  });
});
