import type { RouteGroup } from '../http/server.js';
import type { ThrottleCounters } from './counters.js';
import { type Limits, QUOTA_NAMES, type QuotaName } from './quotas.js';

/**
 * What `GET /quotas` answers (and the console's quotas line shows): the mode the core runs in, the
 * value of every quota (null = not enforced), how often each was breached since start, and the sum.
 * The fleet report reads `throttled` before and after a run and reports the difference.
 */
export interface QuotaReport {
  readonly mode: Limits['mode'];
  readonly limits: Readonly<Record<QuotaName, number | null>>;
  readonly throttled: Readonly<Record<QuotaName, number>>;
  readonly total: number;
}

export interface QuotaSources {
  readonly limits: Limits;
  readonly throttles: ThrottleCounters;
}

export function quotaReport({ limits, throttles }: QuotaSources): QuotaReport {
  // A fresh object per call, in QUOTAS order, so a reader sees every quota even when it is zero.
  const values = {} as Record<QuotaName, number | null>;
  for (const name of QUOTA_NAMES) values[name] = limits.values[name];
  return { mode: limits.mode, limits: values, throttled: throttles.snapshot(), total: throttles.total() };
}

/**
 * `GET /quotas` on the core's HTTP listener, SigV4-signed like the other local routes (service
 * `iot`; `execute-api` too, so a client already signing for the command API can read it). Not an
 * AWS operation: IoT Core reports throttles as CloudWatch metrics, which the local core has not.
 */
export function quotaRoutes(sources: QuotaSources): RouteGroup {
  return {
    name: 'quotas',
    signingNames: ['iot', 'execute-api'],
    routes: [
      { method: 'GET', path: '/quotas', operation: 'GetQuotas', handle: () => ({ json: quotaReport(sources) }) },
    ],
  };
}
