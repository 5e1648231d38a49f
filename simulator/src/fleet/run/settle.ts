import type { HostPool } from '../pool.js';
import { total } from '../summary.js';
import type { PhaseMonitor } from './monitor.js';
import { sleep } from './wait.js';

/**
 * Lets reconnects and outbox backlogs settle before the agents stop (bounded by the drain
 * timeout): every device that connected is connected again and no more than a few batches wait
 * in outboxes.
 */
export async function waitUntilSettled(opts: {
  readonly pool: HostPool;
  readonly monitor: PhaseMonitor;
  readonly timeoutS: number;
  readonly signal: AbortSignal | undefined;
}): Promise<void> {
  const deadline = Date.now() + opts.timeoutS * 1000;
  for (;;) {
    const latest = await opts.monitor.refresh();
    const settled =
      total(latest, (s) => s.connected) >= total(latest, (s) => s.everConnected) &&
      total(latest, (s) => s.outboxDepth) <= opts.pool.hosts * 2;
    if (settled || Date.now() > deadline || opts.signal?.aborted) break;
    await sleep(250);
  }
  // Then, briefly, for every outbox to be empty at once: a batch a device holds back (a publish the
  // broker throttled, waiting out its backoff) is not in flight, so the agents' stop, which waits
  // only for what is in flight, would leave it in its memory outbox. Fleets that never go quiet
  // (thousands of devices) give up after EMPTY_WAIT_MS, within the drain timeout.
  const emptyBy = Math.min(deadline, Date.now() + EMPTY_WAIT_MS);
  while (Date.now() < emptyBy && !opts.signal?.aborted) {
    const latest = await opts.monitor.refresh();
    if (total(latest, (s) => s.outboxDepth) === 0) break;
    await sleep(50);
  }
}

/** How long the settle waits for all outboxes to be empty at once. */
const EMPTY_WAIT_MS = 5_000;
