import { describe, expect, it } from 'vitest';
import { type FailureReport, repeatsLoggedFailure } from '../../src/core/failure-log.js';

const refused = (at: number, namesRetry: boolean): FailureReport => ({ key: 'mqtt-refused\n', at, namesRetry });

describe('repeatsLoggedFailure', () => {
  it.each([
    ['nothing logged yet', undefined, refused(0, true), false],
    ['the same failure within the interval', refused(0, true), refused(3_999, true), true],
    ['the same failure once the interval has passed', refused(0, true), refused(4_000, true), false],
    ['another reason', refused(0, true), { key: 'refused\n', at: 10, namesRetry: true }, false],
    ['the retry time, after a report made during an attempt', refused(0, false), refused(10, true), false],
    ['a report made during an attempt, after one naming the retry time', refused(0, true), refused(10, false), true],
    ['again during an attempt', refused(0, false), refused(10, false), true],
  ])('%s → %s', (_, last, next, repeat) => {
    expect(repeatsLoggedFailure(last, next, 4_000)).toBe(repeat);
  });

  it('a failure whose reports alternate between naming the retry time and not is logged once per interval', () => {
    // What the 3.1.1 transport saw against a broker refusing an inactive certificate, attempts
    // 0.2-1 s apart: whether the SDK was mid-attempt at each report is a race.
    let last: FailureReport | undefined;
    const logged: number[] = [];
    for (let i = 0; i < 20; i++) {
      const next = refused(i * 500, i % 2 === 0);
      if (!repeatsLoggedFailure(last, next, 4_000)) {
        logged.push(next.at);
        last = next;
      }
    }
    expect(logged).toEqual([0, 4_000, 8_000]);
  });
});
