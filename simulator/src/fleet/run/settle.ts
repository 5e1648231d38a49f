import type { HostPool } from '../pool.js';
import { total } from '../summary.js';
import type { PhaseMonitor } from './monitor.js';
import { sleep } from './wait.js';

/** What the settle saw when it ended. */
export interface Settled {
  /** Every device that connected is connected again and every outbox is empty. */
  readonly quiet: boolean;
  readonly seconds: number;
  /** Batches still in outboxes (sent and unacknowledged, held back or waiting) when it ended. */
  readonly outboxDepth: number;
}

/**
 * Lets reconnects and outbox backlogs settle before the agents stop: waits until every device that
 * connected is connected again and every outbox is empty, bounded by the drain timeout.
 *
 * The devices stopped sampling at the end of the measured window (`pauseSampling`), so nothing new
 * arrives and every backlog shrinks until it is gone: a device over the publish quota still holds
 * batches the broker throttled, waiting out their backoff (up to the publisher's backoff cap), and
 * the agents' stop waits only for what is in flight, so stopping before the outbox is empty would
 * count those batches lost. A fleet that cannot get there (a device that never reconnects, a topic
 * refused for good) gives up at the drain timeout, and what is left is counted unsent at stop.
 */
export async function waitUntilSettled(opts: {
  readonly pool: HostPool;
  readonly monitor: PhaseMonitor;
  readonly timeoutS: number;
  readonly signal: AbortSignal | undefined;
}): Promise<Settled> {
  const start = Date.now();
  const deadline = start + opts.timeoutS * 1000;
  for (;;) {
    const latest = await opts.monitor.refresh();
    const outboxDepth = total(latest, (s) => s.outboxDepth);
    const quiet = outboxDepth === 0 && total(latest, (s) => s.connected) >= total(latest, (s) => s.everConnected);
    if (quiet || Date.now() > deadline || opts.signal?.aborted)
      return { quiet, seconds: (Date.now() - start) / 1000, outboxDepth };
    await sleep(SETTLE_POLL_MS);
  }
}

/** How often the settle looks at the hosts' counters (a snapshot of every host each time). */
const SETTLE_POLL_MS = 100;
