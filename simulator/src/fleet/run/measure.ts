import { sleep } from './wait.js';

/**
 * The measured window: `durationS` from the ramp's end (or until `signal`), with `atMiddle`
 * (the faults) run once half-way. Returns the window's end (epoch ms).
 */
export async function measureWindow(opts: {
  readonly rampEnd: number;
  readonly durationS: number;
  readonly signal: AbortSignal | undefined;
  readonly atMiddle: () => Promise<void>;
}): Promise<number> {
  const end = opts.rampEnd + opts.durationS * 1000;
  const middle = opts.rampEnd + (opts.durationS * 1000) / 2;
  let middleDone = false;
  while (Date.now() < end && !opts.signal?.aborted) {
    if (!middleDone && Date.now() >= middle) {
      middleDone = true;
      await opts.atMiddle();
    }
    await sleep(100);
  }
  return Date.now();
}
