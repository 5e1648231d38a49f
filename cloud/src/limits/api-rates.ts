import { type ApiQuotaName, apiQuotaOf } from './api-quotas.js';
import type { ThrottleCounters } from './counters.js';
import { KeyedRateLimiter } from './keyed-rate.js';
import { type Limits, limitOf } from './quotas.js';

/**
 * The control plane's per-operation rates, as the HTTP server asks before it runs an operation:
 * one token bucket per operation for the whole account (IoT Core throttles each API per account
 * and Region; the local core has one account), with the second of burst every other rate here
 * has. A refusal is counted in `throttles` under the operation's quota.
 */
export interface ApiRateGate {
  /** True when `operation` may run at `now`; false = over its rate (the caller answers 429). */
  admit(operation: string, now: number): boolean;
}

export function createApiRateGate(deps: {
  readonly limits: Limits;
  readonly throttles: Pick<ThrottleCounters, 'hit'>;
}): ApiRateGate {
  const limiters = new Map<ApiQuotaName, KeyedRateLimiter | null>();
  const limiterOf = (quota: ApiQuotaName): KeyedRateLimiter | null => {
    let limiter = limiters.get(quota);
    if (limiter === undefined) {
      const rate = limitOf(deps.limits, quota);
      limiter = rate === undefined ? null : new KeyedRateLimiter({ ratePerSecond: rate });
      limiters.set(quota, limiter);
    }
    return limiter;
  };
  return {
    admit(operation, now) {
      const quota = apiQuotaOf(operation);
      if (quota === undefined) return true;
      const limiter = limiterOf(quota);
      if (limiter === null || limiter.tryTake('account', now)) return true;
      deps.throttles.hit(quota, operation);
      return false;
    },
  };
}
