import { until as pollUntil } from '@pifleet/protocol';

/**
 * The test functions a behaviour suite needs, passed in by the caller (vitest's `describe`,
 * `it`, `beforeEach`, `afterEach`), so this module does not import a test runner and can ship
 * in the package: the simulator runs the suites in CI, a Pi runs them against real hardware.
 */
export interface TestApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void> | void, timeout?: number): void;
  beforeEach(fn: () => Promise<void> | void): void;
  afterEach(fn: () => Promise<void> | void): void;
}

/**
 * Polls `condition` between `wait(step)` calls until it holds or `within` ms of waiting have passed:
 * @pifleet/protocol's `until`, with the suite's wait (virtual time in the simulator, real on a Pi).
 */
export function until(
  condition: () => boolean,
  wait: (ms: number) => Promise<void>,
  options: { within: number; step?: number; what: string },
): Promise<void> {
  return pollUntil(condition, { ...options, step: options.step ?? 5, wait });
}
