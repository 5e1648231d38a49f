import type { ReleaseFault } from './simulated-updater.js';

/** How many devices of the fleet get each release fault (percentages of the fleet). */
export interface ReleaseFaultPercents {
  readonly failPercent: number;
  readonly crashPercent: number;
  readonly corruptPercent: number;
}

/**
 * Which devices a release goes wrong on: `round(devices × percent / 100)` devices per fault, spread
 * evenly over the fleet in thing-name order (every 10th device for 10 %: devices 10, 20, 30, …), so
 * each rollout minute meets its share of them and a run is the same every time. The faults never
 * overlap: each picks from the devices the ones before left.
 */
export function releaseFaultPlan(devices: number, p: ReleaseFaultPercents): ReleaseFault[][] {
  const plan: ReleaseFault[][] = Array.from({ length: devices }, () => []);
  let free = Array.from({ length: devices }, (_, i) => i);
  const pick = (fault: ReleaseFault, percent: number) => {
    const n = Math.min(free.length, Math.round((devices * percent) / 100));
    if (n === 0) return;
    const step = free.length / n;
    const chosen = new Set(Array.from({ length: n }, (_, k) => free[Math.floor((k + 1) * step) - 1] as number));
    for (const i of chosen) plan[i]?.push(fault);
    free = free.filter((i) => !chosen.has(i));
  };
  pick('unhealthy', p.failPercent);
  pick('crash-install', p.crashPercent);
  pick('corrupt', p.corruptPercent);
  return plan;
}
