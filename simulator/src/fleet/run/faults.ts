import { pickEvenly, round } from '../metrics.js';
import type { FleetFault } from '../options.js';
import type { HostPool } from '../pool.js';
import type { FaultOutcome } from '../result.js';
import type { LocalTarget } from '../target.js';

/**
 * Injects a phase's faults, one after the other: a restart of the local core, dropped
 * connections at its broker (both need the in-process core), failed sensors on some devices.
 * Returns what each did and the things whose sensors failed.
 */
export async function injectFaults(opts: {
  readonly faults: readonly FleetFault[];
  readonly local: LocalTarget | undefined;
  readonly pool: HostPool;
  readonly names: readonly string[];
  readonly devices: number;
  readonly intervalMs: number;
  /** Phase start, epoch ms (outcomes are timed from it). */
  readonly t0: number;
}): Promise<{ outcomes: FaultOutcome[]; failedThings: string[] }> {
  const { local, pool, names } = opts;
  const outcomes: FaultOutcome[] = [];
  let failedThings: string[] = [];
  for (const f of opts.faults) {
    const atS = round((Date.now() - opts.t0) / 1000);
    if (f.kind === 'restart-core' && local) {
      const r = await local.restart();
      outcomes.push({ kind: f.kind, atS, affected: opts.devices, detail: { downMs: r.downMs } });
    } else if (f.kind === 'drop-connections' && local) {
      const n = local.dropConnections(pickEvenly(names, f.fraction));
      outcomes.push({ kind: f.kind, atS, affected: n, detail: { fraction: f.fraction } });
    } else if (f.kind === 'sensor-failure') {
      failedThings = pickEvenly(names, f.fraction);
      const n = await pool.failSensors(failedThings);
      outcomes.push({ kind: f.kind, atS, affected: n, detail: { fraction: f.fraction } });
      // Once the sensors have failed a read, make those devices report (the periodic report is minutes away).
      setTimeout(() => void pool.syncShadow(failedThings).catch(() => undefined), opts.intervalMs * 2 + 500);
    }
  }
  return { outcomes, failedThings };
}
