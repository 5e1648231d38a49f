import { describe, expect, it } from 'vitest';
import { withTimeout } from '../../src/ports/clock.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';

const deferred = <T>() => {
  let resolve!: (v: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

describe('withTimeout', () => {
  it('rejects with the given error once the time has passed on the clock, and not a millisecond before', async () => {
    const clock = createVirtualClock();
    const d = deferred<string>();
    let outcome: unknown;
    withTimeout(clock, 1_000, d.promise, () => new Error('too late')).then(
      (v) => {
        outcome = v;
      },
      (err: unknown) => {
        outcome = err;
      },
    );
    await clock.advance(999);
    expect(outcome).toBeUndefined();
    await clock.advance(1);
    expect(outcome).toEqual(new Error('too late'));
    d.resolve('answer');
    await clock.advance(1);
    expect(outcome).toEqual(new Error('too late'));
  });

  it.each([
    {
      settles: 'resolves',
      settle: (d: ReturnType<typeof deferred<string>>) => d.resolve('answer'),
      expected: 'answer',
    },
    {
      settles: 'rejects',
      settle: (d: ReturnType<typeof deferred<string>>) => d.reject(new Error('refused')),
      expected: new Error('refused'),
    },
  ])('settles as the promise does when it $settles in time, and cancels its timer', async ({ settle, expected }) => {
    const clock = createVirtualClock();
    const d = deferred<string>();
    let timeouts = 0;
    const raced = withTimeout(clock, 1_000, d.promise, () => {
      timeouts += 1;
      return new Error('too late');
    });
    const outcome = raced.then(
      (v) => v,
      (err: unknown) => err,
    );
    settle(d);
    expect(await outcome).toEqual(expected);
    expect(clock.pending()).toBe(0);
    await clock.advance(5_000);
    expect(timeouts).toBe(0);
  });
});
