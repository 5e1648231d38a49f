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
}
