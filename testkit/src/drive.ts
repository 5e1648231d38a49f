import { until } from '@pifleet/protocol';

/** A clock whose time moves only when told (the simulator's virtual clock). */
export interface SteppedClock {
  advance(ms: number): Promise<void>;
}

/**
 * Settles `work` whose progress needs virtual time (sensor init and conversion delays, the bounded
 * drain on stop) by advancing `clock` in small steps until it does.
 */
export async function drive<T>(clock: SteppedClock, work: Promise<T>, stepMs = 5): Promise<T> {
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  while (!settled) await clock.advance(stepMs);
  return done;
}

/**
 * Advances virtual time in steps of `stepMs`, with real time passing between them (for the network
 * and the broker), until `cond` holds; bounded in real time.
 */
export function driveUntil(clock: SteppedClock, cond: () => boolean, ms: number, what: string, stepMs = 50) {
  return until(
    async () => {
      if (cond()) return true;
      await clock.advance(stepMs);
      return false;
    },
    { within: ms, step: 10, what },
  );
}
