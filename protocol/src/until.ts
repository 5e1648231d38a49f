/**
 * Waiting on a condition, for tests and behaviour suites: the one poller every package uses (the
 * port behaviour suites of device-agent, cloud's suites, @pifleet/testkit). It lives here, beside the
 * wire contract, because this is the one package all of them may import; it does no I/O.
 *
 * Poll only state that has no event to wait on; where there is an event, wait on the event.
 */

export interface UntilOptions {
  /** How long to keep checking, in ms. */
  readonly within: number;
  /** What is awaited, for the message of the timeout. */
  readonly what: string;
  /** The pause between two checks, in ms (default 20). */
  readonly step?: number;
  /**
   * Waits `ms` between checks: a virtual clock's sleep, or real time on a device. When given, time
   * is counted in the steps waited (virtual time may pass faster than the wall clock); otherwise it
   * is the wall clock.
   */
  readonly wait?: (ms: number) => Promise<void>;
}

/** The condition did not hold within the time given. */
export class UntilTimeoutError extends Error {
  override readonly name = 'UntilTimeoutError';
  readonly what: string;
  readonly within: number;

  constructor(what: string, within: number) {
    super(`timed out after ${within} ms waiting for ${what}`);
    this.what = what;
    this.within = within;
  }
}

const realWait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves once `condition` holds, checked now and after every step; rejects after `within` ms. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  { within, what, step = 20, wait }: UntilOptions,
): Promise<void> {
  const started = Date.now();
  let waited = 0;
  const elapsed = () => (wait ? waited : Date.now() - started);
  while (!(await condition())) {
    if (elapsed() >= within) throw new UntilTimeoutError(what, within);
    await (wait ?? realWait)(step);
    waited += step;
  }
}
