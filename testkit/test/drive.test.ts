import { describe, expect, it } from 'vitest';
import { drive, driveUntil } from '../src/drive.js';

/** A clock that records how far it was advanced and wakes sleepers whose time has come. */
function steppedClock() {
  let now = 0;
  const sleepers: Array<{ at: number; wake: () => void }> = [];
  return {
    now: () => now,
    sleep: (ms: number) => new Promise<void>((wake) => sleepers.push({ at: now + ms, wake })),
    async advance(ms: number) {
      now += ms;
      for (const s of sleepers.filter((x) => x.at <= now)) {
        sleepers.splice(sleepers.indexOf(s), 1);
        s.wake();
      }
      await Promise.resolve();
    },
  };
}

describe('drive', () => {
  it('advances the clock in steps until the work settles, and returns its value', async () => {
    const clock = steppedClock();
    const work = clock.sleep(100).then(() => 'initialised');
    expect(await drive(clock, work, 10)).toBe('initialised');
    expect(clock.now()).toBeGreaterThanOrEqual(100);
    expect(clock.now()).toBeLessThan(130);
  });

  it('passes on the failure of the work', async () => {
    const clock = steppedClock();
    const work = clock.sleep(20).then(() => Promise.reject(new Error('sensor init failed')));
    await expect(drive(clock, work)).rejects.toThrow('sensor init failed');
  });
});

describe('driveUntil', () => {
  it('advances virtual time step by step until the condition holds', async () => {
    const clock = steppedClock();
    await driveUntil(clock, () => clock.now() >= 200, 10_000, 'virtual 200 ms', 50);
    expect(clock.now()).toBe(200);
  });

  it('gives up after its real time, naming what it waited for', async () => {
    const clock = steppedClock();
    await expect(driveUntil(clock, () => false, 100, 'a drained outbox')).rejects.toThrow(
      'timed out after 100 ms waiting for a drained outbox',
    );
    expect(clock.now()).toBeGreaterThan(0);
  });
});
