import { describe, expect, it } from 'vitest';
import { UntilTimeoutError, until } from '../src/until.js';

/** A wait that only counts: virtual time that passes at once. */
function countingWait() {
  const waits: number[] = [];
  return { waits, wait: async (ms: number) => void waits.push(ms) };
}

describe('until', () => {
  it('resolves at once when the condition already holds, without waiting', async () => {
    const { waits, wait } = countingWait();
    await until(() => true, { within: 100, what: 'nothing', wait });
    expect(waits).toEqual([]);
  });

  it('checks after every step until the condition holds', async () => {
    const { waits, wait } = countingWait();
    let checks = 0;
    await until(() => ++checks === 4, { within: 100, step: 5, what: 'the fourth check', wait });
    expect(checks).toBe(4);
    expect(waits).toEqual([5, 5, 5]);
  });

  it('awaits an asynchronous condition', async () => {
    const { wait } = countingWait();
    let checks = 0;
    await until(async () => ++checks === 3, { within: 100, what: 'the third check', wait });
    expect(checks).toBe(3);
  });

  it('counts injected waits as time: gives up after `within` ms of steps, naming what it waited for', async () => {
    const { waits, wait } = countingWait();
    const failed = until(() => false, { within: 50, step: 10, what: 'a rising edge', wait });
    await expect(failed).rejects.toThrow(new UntilTimeoutError('a rising edge', 50));
    await expect(failed).rejects.toThrow('timed out after 50 ms waiting for a rising edge');
    expect(waits).toEqual([10, 10, 10, 10, 10]);
  });

  it('on the wall clock by default: polls until the deadline, then rejects', async () => {
    const started = Date.now();
    let checks = 0;
    const failed = until(
      () => {
        checks++;
        return false;
      },
      { within: 100, step: 10, what: 'the wall clock' },
    );
    await expect(failed).rejects.toBeInstanceOf(UntilTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(checks).toBeGreaterThan(1);
  });

  it('on the wall clock: resolves once a change made meanwhile holds', async () => {
    let ready = false;
    setTimeout(() => {
      ready = true;
    }, 30);
    await until(() => ready, { within: 2_000, step: 5, what: 'ready' });
    expect(ready).toBe(true);
  });
});
