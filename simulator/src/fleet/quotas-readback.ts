import { SimulatorError } from '../errors.js';
import { type CommandApiTarget, signRequest } from './command-load.js';

/** A core's quota breaches by quota, and the mode it enforces them in. */
export interface CoreThrottles {
  readonly mode: string;
  readonly byQuota: Readonly<Record<string, number>>;
}

/**
 * Reads a running local core's quota counters: `GET /quotas` on its HTTP listener, SigV4-signed with
 * the core's key pair (the route takes `execute-api` signatures, as the command API does).
 */
export async function readCoreQuotas(
  httpBase: string,
  signing: Pick<CommandApiTarget, 'region' | 'credentials'>,
): Promise<CoreThrottles> {
  const url = new URL(`${httpBase.replace(/\/$/, '')}/quotas`);
  const headers = await signRequest({ method: 'GET', url, body: '', now: new Date() }, signing);
  const res = await fetch(url, { method: 'GET', headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) {
    throw new SimulatorError('FLEET_QUOTAS', `GET /quotas answered ${res.status}`, {
      data: { body: text.slice(0, 200) },
    });
  }
  const body = JSON.parse(text) as { mode?: unknown; throttled?: unknown };
  const byQuota: Record<string, number> = {};
  if (body.throttled && typeof body.throttled === 'object') {
    for (const [q, n] of Object.entries(body.throttled)) if (typeof n === 'number') byQuota[q] = n;
  }
  return { mode: typeof body.mode === 'string' ? body.mode : 'unknown', byQuota };
}

/** The breaches between two readings of the counters: only quotas breached, with how often. */
export function throttlesBetween(before: CoreThrottles | undefined, after: CoreThrottles) {
  const byQuota: Record<string, number> = {};
  let total = 0;
  for (const [q, n] of Object.entries(after.byQuota)) {
    const d = n - (before?.byQuota[q] ?? 0);
    if (d > 0) {
      byQuota[q] = d;
      total += d;
    }
  }
  return { mode: after.mode, total, byQuota };
}
