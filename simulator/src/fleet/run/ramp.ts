import type { HostPool } from '../pool.js';
import { total } from '../summary.js';
import type { PhaseMonitor } from './monitor.js';
import { sleep } from './wait.js';

/**
 * The ramp: waits until every host has started its devices and every device has connected once,
 * bounded by three times the nominal ramp plus a minute. Returns the ramp's end (epoch ms).
 */
export async function waitForRamp(opts: {
  readonly pool: HostPool;
  readonly monitor: PhaseMonitor;
  /** Ids of the hosts that started all their devices. */
  readonly ramped: ReadonlySet<number>;
  readonly devices: number;
  readonly rampPerSecond: number;
  readonly t0: number;
  readonly signal: AbortSignal | undefined;
}): Promise<number> {
  const { pool, monitor, ramped } = opts;
  const deadline = opts.t0 + ((opts.devices / opts.rampPerSecond) * 3 + 60) * 1000;
  while (Date.now() < deadline && !opts.signal?.aborted) {
    if (ramped.size === pool.hosts && total(monitor.latest, (s) => s.everConnected) >= opts.devices) break;
    await sleep(200);
    if (ramped.size === pool.hosts) await monitor.refresh();
  }
  return Date.now();
}
